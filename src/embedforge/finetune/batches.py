"""The prepared splits as the fine-tuning stage sees them: checked, encoded, batched by length."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from embedforge.core.errors import EmbedforgeError
from embedforge.core.prepared import PreparedData

COLUMNS = ["input_ids", "label", "length"]


@dataclass(frozen=True)
class Split:
    """One encoded split: token ids, label ids and lengths, in file order."""

    path: Path
    input_ids: list[list[int]]
    labels: np.ndarray
    lengths: list[int]

    def __len__(self) -> int:
        return len(self.labels)


class EncodedDataset(Dataset):
    """A split as the `{"input_ids", "labels"}` items that `DataCollatorWithPadding` pads per batch."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, object]:
        return {"input_ids": self.split.input_ids[i], "labels": int(self.split.labels[i])}


class EpochSeededLengthSampler(LengthGroupedSampler):
    """transformers' length-grouped shuffling, seeded by (seed, epoch) rather than the global RNG.

    Why: a run resumed in epoch e must replay exactly the batch order of the uninterrupted run; the
    stock sampler draws from the global RNG, whose state at the start of epoch e differs after a restart.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int, min_mega_batch: int = 1) -> None:
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0
        # transformers sorts within mega-batches of min(rows // (4 x batch), 50) batches: for a small set
        # (< 128 texts at batch 32) that is 1 batch, i.e. no grouping, and the padding makes a step on short
        # texts ~1.6x as slow; a floor of a few batches keeps the grouping (and still shuffles)
        self.mega_batch_mult = max(min(len(lengths) // (batch_size * 4), 50), min_mega_batch)

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer at the start of every epoch."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(
            get_length_grouped_indices(
                self.lengths, self.batch_size, self.mega_batch_mult, generator=generator
            )
        )


def load_encoded_split(prepared: PreparedData, split: str, num_labels: int) -> Split:
    """Read one split and check that it is non-empty and its label ids fit the classifier head."""
    path = prepared.split_path(split)
    df = prepared.split(split, COLUMNS)
    if df.empty:
        raise EmbedforgeError(f"{path}: the split is empty; expected at least one row")
    labels = df["label"].to_numpy()
    bad = np.flatnonzero((labels < 0) | (labels >= num_labels))
    if bad.size:
        row = int(bad[0])
        raise EmbedforgeError(
            f"{path} row {row}: label id {labels[row]} is outside the classifier head's range "
            f"0..{num_labels - 1} ({prepared.labels_path.name} names {num_labels} labels)"
        )
    ids = [list(map(int, x)) for x in df["input_ids"]]
    return Split(path, ids, labels.astype(np.int64), [int(n) for n in df["length"]])
