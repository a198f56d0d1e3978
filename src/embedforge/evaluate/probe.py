"""Downstream probe: what a word matrix buys a small classifier.

The model is the mean of the word vectors of a segmented text, then a linear layer. In the `frozen`
variant only the linear layer learns; in the `trainable` variant the word vectors are fine-tuned too.
Run on each matrix and on a random matrix of the same shape, the gap is what the pretrained parameters buy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from embedforge.core.device import CPU
from embedforge.core.metrics import ACCURACY, MACRO_F1, classification_metrics
from embedforge.evaluate.files import VARIANTS
from embedforge.evaluate.training import epochs_for, fit, one_thread, optimizers


@dataclass(frozen=True)
class ProbeScores:
    """Test accuracy and macro-F1 of the frozen and of the trainable probe on one matrix."""

    frozen: dict[str, float]
    trainable: dict[str, float]

    def metrics(self) -> dict[str, dict[str, float]]:
        """The numbers that go to metrics/classification.json (`probe.<matrix>`)."""
        return {"frozen": dict(self.frozen), "trainable": dict(self.trainable)}


@dataclass(frozen=True)
class ProbeConfig:
    """Training settings shared by every probe run."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 42
    min_steps: int = 0  # more epochs for a small training set (learning curves): at least this many steps
    device: torch.device = CPU  # where models train (evaluate.device, resolved)


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


class MeanProbe(nn.Module):
    """Mean of word vectors (an empty text gives zeros), standardised, then a linear layer."""

    shift: torch.Tensor  # buffers, registered in __init__
    scale: torch.Tensor

    def __init__(
        self, weight: torch.Tensor, num_labels: int, trainable: bool, train: ProbeData | None
    ) -> None:
        super().__init__()
        self.pad = weight.shape[0]
        padded = torch.cat([weight, weight.new_zeros(1, weight.shape[1])])  # row `pad`: never in a mean
        self.bag = nn.EmbeddingBag.from_pretrained(
            padded, freeze=not trainable, mode="mean", sparse=True, padding_idx=self.pad
        )
        # Fixed standardisation from the initial train features: a linear map, so the model class is
        # unchanged, but matrices of very different scales become equally easy to optimise. Without
        # `train` (a saved model about to be loaded) the buffers are placeholders.
        shift, scale = weight.new_zeros(weight.shape[1]), weight.new_ones(weight.shape[1])
        if train is not None:
            with torch.no_grad():
                feats = self.bag(train.ids)
            shift, scale = feats.mean(0), feats.std(0).clamp_min(1e-6)
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)
        self.linear = nn.Linear(weight.shape[1], num_labels)
        nn.init.zeros_(self.linear.weight)  # convex when frozen: a zero start is deterministic and fine
        nn.init.zeros_(self.linear.bias)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from mean word vectors."""
        return self.linear((feats - self.shift) / self.scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(ids))


def train_probe(
    weight: torch.Tensor, train: ProbeData, num_labels: int, trainable: bool, cfg: ProbeConfig
) -> MeanProbe:
    """Train one probe for a fixed number of epochs (`training.fit`), on the device of `weight`."""
    model = MeanProbe(weight, num_labels, trainable, train).to(weight.device)
    opts = optimizers(model.linear.parameters(), model.bag.weight, cfg.lr, float(weight.std()))
    # Frozen vectors: the mean vectors never change, so compute them once and train only the head.
    frozen_feats = None if trainable else model.bag(train.ids).detach()

    def step(rows: torch.Tensor) -> torch.Tensor:
        return model(train.batch(rows)) if frozen_feats is None else model.head(frozen_feats[rows])

    epochs = epochs_for(len(train.labels), cfg.batch_size, cfg.epochs, cfg.min_steps)
    fit(model, step, train.labels, opts, epochs, cfg.batch_size, cfg.seed)
    return model


def predict(model: MeanProbe, data: ProbeData) -> np.ndarray:
    """Predicted class ids."""
    with torch.inference_mode():
        return model(data.ids).argmax(-1).cpu().numpy()


def run_probe(
    weight: torch.Tensor, train: ProbeData, test: ProbeData, names: list[str], cfg: ProbeConfig
) -> ProbeScores:
    """Frozen and trainable probes on one matrix (on `cfg.device`): test accuracy and macro-F1 of each."""
    result = {}
    weight, train, placed = weight.to(cfg.device), train.to(cfg.device), test.to(cfg.device)
    with one_thread():
        for variant in VARIANTS:
            model = train_probe(weight, train, len(names), variant == "trainable", cfg)
            scores = classification_metrics(test.labels.numpy(), predict(model, placed), names)
            result[variant] = {ACCURACY: scores[ACCURACY], MACRO_F1: scores[MACRO_F1]}
    return ProbeScores(**result)


def random_matrix(like: torch.Tensor, seed: int) -> torch.Tensor:
    """A seeded normal matrix of the same shape, mean and std as `like`."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(like.shape, generator=generator, dtype=torch.float32)
    return noise * like.std() + like.mean()
