"""Downstream consumers of a static word matrix: what a user would put on top of `nn.Embedding`.

`mean` is the probe (`probe.MeanProbe`); `cnn` is Kim (2014): convolutions of widths 3/4/5 over the word
vectors, max-pooled over time, dropout, a linear layer; `bilstm` is a bidirectional LSTM whose outputs are
max-pooled over the words. Each runs with the matrix `frozen` or `trainable`, and all train with the one
loop of `training.fit`. The word vectors enter the CNN and the BiLSTM standardised per dimension (a fixed
affine map from the matrix's own rows), so matrices of very different scales are equally easy to optimise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import ACCURACY, MACRO_F1, classification_metrics
from embedforge.evaluate.probe import ProbeConfig, ProbeData, predict, train_probe
from embedforge.evaluate.training import epochs_for, fit, optimizers

CNN_WIDTHS = (3, 4, 5)
PREDICT_BATCH = 256  # test texts per forward pass (bounds the memory of a [batch, words, dim] tensor)


@dataclass(frozen=True)
class NetConfig:
    """Sizes of the CNN and the BiLSTM."""

    filters: int = 64  # CNN filters per width
    hidden: int = 64  # BiLSTM hidden size per direction
    dropout: float = 0.5


class WordInputs(nn.Module):
    """Row ids -> standardised word vectors [batch, words, dim], zero at padding (`pad` = vocabulary size)."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, weight: torch.Tensor, trainable: bool) -> None:
        super().__init__()
        self.pad = weight.shape[0]
        padded = torch.cat([weight, weight.new_zeros(1, weight.shape[1])])
        self.embedding = nn.Embedding.from_pretrained(
            padded, freeze=not trainable, sparse=True, padding_idx=self.pad
        )
        self.register_buffer("shift", weight.mean(0))
        self.register_buffer("scale", weight.std(0).clamp_min(1e-6))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        vectors = (self.embedding(ids) - self.shift) / self.scale
        return vectors * (ids != self.pad).unsqueeze(-1)


class KimCNN(nn.Module):
    """Kim (2014): convolutions of several widths, ReLU, max over time, dropout, linear."""

    def __init__(self, weight: torch.Tensor, num_labels: int, trainable: bool, net: NetConfig) -> None:
        super().__init__()
        self.inputs = WordInputs(weight, trainable)
        dim = weight.shape[1]
        self.convs = nn.ModuleList(nn.Conv1d(dim, net.filters, w) for w in CNN_WIDTHS)
        self.dropout = nn.Dropout(net.dropout)
        self.linear = nn.Linear(net.filters * len(CNN_WIDTHS), num_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        short = max(CNN_WIDTHS) - ids.shape[1]
        if short > 0:  # a text shorter than the widest filter: pad (zero vectors), as Kim does
            ids = F.pad(ids, (0, short), value=self.inputs.pad)
        x = self.inputs(ids).transpose(1, 2)  # [batch, dim, words]
        lengths = (ids != self.inputs.pad).sum(1, keepdim=True)
        pooled = []
        for width, conv in zip(CNN_WIDTHS, self.convs, strict=True):
            out = F.relu(conv(x))  # [batch, filters, positions]
            # only windows that start inside the text (at least the first): the scores do not depend
            # on how far a batch is padded, so batching by length changes no prediction
            valid = torch.arange(out.shape[-1], device=out.device) < (lengths - width + 1).clamp_min(1)
            pooled.append(out.masked_fill(~valid.unsqueeze(1), 0.0).amax(-1))
        return self.linear(self.dropout(torch.cat(pooled, -1)))


class BiLSTMMax(nn.Module):
    """A bidirectional LSTM over the words, its outputs max-pooled over the real words, dropout, linear."""

    def __init__(self, weight: torch.Tensor, num_labels: int, trainable: bool, net: NetConfig) -> None:
        super().__init__()
        self.inputs = WordInputs(weight, trainable)
        self.lstm = nn.LSTM(weight.shape[1], net.hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(net.dropout)
        self.linear = nn.Linear(2 * net.hidden, num_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != self.inputs.pad).sum(1).clamp_min(1)  # a text without known words: one pad
        # packing takes its lengths on the CPU, whatever the device
        packed = pack_padded_sequence(self.inputs(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        real = torch.arange(out.shape[1], device=out.device).unsqueeze(0) < lengths.unsqueeze(1)
        pooled = out.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(1)
        return self.linear(self.dropout(pooled))


Net = Callable[[torch.Tensor, int, bool, NetConfig], nn.Module]
NETS: dict[str, Net] = {"cnn": KimCNN, "bilstm": BiLSTMMax}
CONSUMERS: tuple[str, ...] = ("mean", *NETS)


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
