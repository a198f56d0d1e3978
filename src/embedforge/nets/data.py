"""Texts as padded rows of matrix row ids: what every small model reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch


@dataclass
class ProbeData:
    """Texts as rows of matrix row ids, right-padded with `pad` (= the vocabulary size), and their labels."""

    ids: torch.Tensor  # [texts, longest text] int64
    labels: torch.Tensor
    pad: int

    def batch(self, rows: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """The id rows of some texts, trimmed to the longest of them."""
        ids = self.ids[rows]
        width = max(int((ids != self.pad).sum(1).max()), 1) if len(ids) else 1
        return ids[:, :width]

    def lengths(self) -> list[int]:
        """In-vocabulary words per text."""
        return (self.ids != self.pad).sum(1).tolist()

    def subset(self, rows: np.ndarray | torch.Tensor) -> ProbeData:
        """Some texts only (a training subset of a learning curve)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return ProbeData(ids=self.ids[rows], labels=self.labels[rows], pad=self.pad)

    def to(self, device: torch.device) -> ProbeData:
        """The same texts on `device` (the same tensors when they are there already)."""
        return ProbeData(ids=self.ids.to(device), labels=self.labels.to(device), pad=self.pad)


def to_probe_data(texts: Sequence[Sequence[str]], labels: Sequence[int], index: dict[str, int]) -> ProbeData:
    """Segmented texts -> padded row ids of their in-vocabulary words (a text may have none)."""
    pad = len(index)
    rows = [[index[w] for w in words if w in index] for words in texts]
    ids = torch.full((len(rows), max((len(r) for r in rows), default=0) or 1), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return ProbeData(ids=ids, labels=torch.as_tensor(np.asarray(labels), dtype=torch.long), pad=pad)


def ids_to_probe_data(ids: Sequence[Sequence[int]], labels: Sequence[int], pad: int) -> ProbeData:
    """Texts as token ids (a segmenter's `ids`) -> padded row ids, ids >= `pad` (tokens without a row)
    left out; vectorised: no Python loop over the tokens."""
    counts = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(counts.sum()))
    keep = flat < pad
    text = np.repeat(np.arange(len(ids)), counts)[keep]
    kept = np.bincount(text, minlength=len(ids))
    position = np.arange(len(text)) - (np.cumsum(kept) - kept)[text]
    out = np.full((len(ids), int(kept.max(initial=0)) or 1), pad, dtype=np.int64)
    out[text, position] = flat[keep]
    return ProbeData(
        ids=torch.from_numpy(out), labels=torch.as_tensor(np.asarray(labels), dtype=torch.long), pad=pad
    )
