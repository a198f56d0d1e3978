"""The downstream consumers scored on the learning curves: `mean`, `cnn`, `bilstm` (`embedforge.nets.models`),
each with the matrix `frozen` or `trainable`, all trained by the one loop of `nets.training.fit`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import ACCURACY, MACRO_F1, classification_metrics
from embedforge.evaluate.probe import ProbeConfig, predict, train_probe
from embedforge.nets.data import ProbeData
from embedforge.nets.models import CONSUMERS, NETS, PREDICT_BATCH, NetConfig, WordInputs
from embedforge.nets.training import epochs_for, fit, optimizers


def check_consumers(names: list[str], key: str = "evaluate.curve_consumers") -> list[str]:
    """Raise on an unknown consumer name; return the names without duplicates."""
    for i, name in enumerate(names):
        if name not in CONSUMERS:
            raise EmbedforgeError(
                f"params.yaml: {key}[{i}] = {name!r} is not a consumer; "
                f"expected one of: {', '.join(CONSUMERS)}"
            )
    return list(dict.fromkeys(names))


def train_net(
    kind: str,
    weight: torch.Tensor,
    train: ProbeData,
    num_labels: int,
    trainable: bool,
    cfg: ProbeConfig,
    net: NetConfig,
) -> nn.Module:
    """Build (seeded, on the CPU: the same initial weights on any device) and train a CNN or BiLSTM on
    the device of `weight`; the global RNG (and the GPU's) is restored afterwards."""
    gpus = [weight.device.index or 0] if weight.device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(cfg.seed)  # initial weights and dropout masks
        model = NETS[kind](weight.cpu(), num_labels, trainable, net).to(weight.device)
        inputs = model.inputs
        assert isinstance(inputs, WordInputs)
        dense = [p for n, p in model.named_parameters() if not n.startswith("inputs.")]
        opts = optimizers(dense, inputs.embedding.weight, cfg.lr, float(weight.std()))
        epochs = epochs_for(len(train.labels), cfg.batch_size, cfg.epochs, cfg.min_steps)
        step = lambda rows: model(train.batch(rows))  # noqa: E731
        return fit(model, step, train.labels, opts, epochs, cfg.batch_size, cfg.seed, train.lengths())


def predict_net(model: nn.Module, data: ProbeData) -> np.ndarray:
    """Predicted class ids, in batches of PREDICT_BATCH texts."""
    order = np.argsort(data.lengths(), kind="stable")  # similar lengths pad less; scores do not change
    out = np.zeros(len(order), dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, len(order), PREDICT_BATCH):
            rows = torch.as_tensor(order[start : start + PREDICT_BATCH])
            out[rows.numpy()] = model(data.batch(rows)).argmax(-1).cpu().numpy()
    return out


def consumer_scores(
    kind: str,
    weight: torch.Tensor,
    train: ProbeData,
    test: ProbeData,
    names: list[str],
    trainable: bool,
    cfg: ProbeConfig,
    net: NetConfig,
) -> dict[str, float]:
    """Train one consumer on `train` (on `cfg.device`) and return its test accuracy and macro-F1."""
    weight, train, placed = weight.to(cfg.device), train.to(cfg.device), test.to(cfg.device)
    if kind == "mean":
        predicted = predict(train_probe(weight, train, len(names), trainable, cfg), placed)
    else:
        predicted = predict_net(train_net(kind, weight, train, len(names), trainable, cfg, net), placed)
    scores = classification_metrics(test.labels.numpy(), predicted, names)
    return {ACCURACY: scores[ACCURACY], MACRO_F1: scores[MACRO_F1]}
