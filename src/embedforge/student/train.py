"""Training the student: a small consumer on one word matrix, from the gold labels and the teacher's logits.

The consumers are the ones `evaluate` scores (`mean`, `cnn`, `bilstm`, see nets.models); here they
learn from the fine-tuned transformer as well as from the labels (Tang et al. 2019 distil BERT into a
BiLSTM with an MSE between logits; `kl` is Hinton et al.'s softened cross-entropy). Every epoch is scored
on the validation split and the best epoch's weights are kept, so the number of epochs is a budget, not a
setting to tune.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from embedforge.core.metrics import MACRO_F1, classification_metrics
from embedforge.core.params import StudentParams
from embedforge.nets.data import ProbeData
from embedforge.nets.models import NETS, PREDICT_BATCH, MeanProbe, NetConfig, WordInputs
from embedforge.nets.training import Loss, fit, one_thread, optimizers


def net_config(p: StudentParams) -> NetConfig:
    return NetConfig(filters=p.filters, hidden=p.hidden, dropout=p.dropout)


def build_net(
    kind: str, weight: torch.Tensor, num_labels: int, trainable: bool, net: NetConfig, train: ProbeData | None
) -> nn.Module:
    """A consumer on `weight` (`train` fixes the mean model's standardisation; None: loaded from a file)."""
    if kind == "mean":
        return MeanProbe(weight, num_labels, trainable, train)
    return NETS[kind](weight, num_labels, trainable, net)


def word_table(model: nn.Module) -> nn.Parameter:
    """The word-vector parameter of a consumer (the padded matrix: its last row is the padding row)."""
    if isinstance(model, MeanProbe):
        return model.bag.weight  # type: ignore[return-value]
    inputs = model.inputs
    assert isinstance(inputs, WordInputs)
    return inputs.embedding.weight


def logits_of(model: nn.Module, data: ProbeData) -> torch.Tensor:
    """Logits [texts, labels] in batches of similar length (padding changes no score)."""
    order = np.argsort(data.lengths(), kind="stable")
    chunks: list[tuple[np.ndarray, torch.Tensor]] = []
    with torch.inference_mode():
        for start in range(0, len(order), PREDICT_BATCH):
            rows = order[start : start + PREDICT_BATCH]
            chunks.append((rows, model(data.batch(torch.as_tensor(rows))).float()))
    out = torch.zeros(len(order), chunks[0][1].shape[1] if chunks else 0)
    for rows, logits in chunks:
        out[torch.as_tensor(rows)] = logits
    return out


def student_loss(p: StudentParams, labels: torch.Tensor, teacher: torch.Tensor | None) -> Loss:
    """The training loss of `p.loss` over batches of rows of the transfer set."""

    def loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        gold = F.cross_entropy(logits, labels[rows])
        if p.loss == "labels" or teacher is None:
            return gold
        target = teacher[rows]
        if p.distill == "mse":
            taught = F.mse_loss(logits, target)
        else:  # Hinton et al.: T^2 keeps the gradient scale independent of the temperature
            t = p.temperature
            taught = F.kl_div(
                F.log_softmax(logits / t, -1),
                F.log_softmax(target / t, -1),
                reduction="batchmean",
                log_target=True,
            ) * (t * t)
        if p.loss == "teacher":
            return taught
        return (1 - p.teacher_weight) * gold + p.teacher_weight * taught

    return loss


@dataclass(frozen=True)
class Trained:
    """A trained student and how it got there."""

    model: nn.Module
    best_epoch: int  # 1-based
    validation_macro_f1: list[float]  # per epoch


def macro_f1(model: nn.Module, data: ProbeData, names: list[str]) -> float:
    predicted = logits_of(model, data).argmax(-1).numpy()
    return float(classification_metrics(data.labels.numpy(), predicted, names)[MACRO_F1])


def train_student(
    p: StudentParams,
    weight: torch.Tensor,
    train: ProbeData,
    teacher: torch.Tensor | None,
    validation: ProbeData,
    names: list[str],
) -> Trained:
    """Train `p.consumer` on `weight` for `p.epochs` epochs (seeded, one thread: these ops are tiny) and keep
    the epoch with the best validation macro-F1 (the first of equals)."""
    with one_thread(), torch.random.fork_rng():
        torch.manual_seed(p.seed)  # initial weights and dropout masks
        model = build_net(p.consumer, weight, len(names), p.trainable, net_config(p), train)
        table = word_table(model)
        dense = [q for q in model.parameters() if q is not table]
        opts = optimizers(dense, table, p.lr, float(weight.std()))
        loss = student_loss(p, train.labels, teacher)
        scores: list[float] = []
        best: dict[str, torch.Tensor] = {}
        for epoch in range(p.epochs):
            step = lambda rows: model(train.batch(rows))  # noqa: E731
            # one epoch per call, each with its own seeded order
            fit(model, step, train.labels, opts, 1, p.batch_size, p.seed + epoch, train.lengths(), loss)
            scores.append(macro_f1(model, validation, names))
            if scores[-1] > max(scores[:-1], default=-1.0):
                best = copy.deepcopy(model.state_dict())
        model.load_state_dict(best)
        return Trained(model.eval(), int(np.argmax(scores)) + 1, scores)
