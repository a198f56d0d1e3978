"""Downstream probe: what a word matrix buys a small classifier.

The model is the mean of the word vectors of a segmented text, then a linear layer. In the `frozen`
variant only the linear layer learns; in the `trainable` variant the word vectors are fine-tuned too.
Run on each matrix and on a random matrix of the same shape, the gap is what the pretrained parameters buy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from embedforge.core.device import CPU
from embedforge.core.metrics import ACCURACY, MACRO_F1, classification_metrics
from embedforge.evaluate.files import VARIANTS
from embedforge.nets.data import ProbeData
from embedforge.nets.models import MeanProbe
from embedforge.nets.training import epochs_for, fit, one_thread, optimizers


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
