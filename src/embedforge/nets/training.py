"""The one training loop of every downstream consumer (the mean probe, the CNN, the BiLSTM).

Seeded shuffling from its own generator, a fixed number of epochs, cross-entropy, any optimizers. A
trainable word matrix is a sparse embedding stepped by SparseAdam with a step scaled to its entries' std,
so that every matrix (and its random twin) moves by the same relative amount.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers.trainer_pt_utils import get_length_grouped_indices

Step = Callable[[torch.Tensor], torch.Tensor]  # rows of the training data -> logits
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, rows) -> the loss of that batch


def optimizers(
    dense: Iterable[torch.Tensor], vectors: torch.Tensor | None, lr: float, weight_std: float
) -> list[torch.optim.Optimizer]:
    """Adam for the dense parameters; SparseAdam at `lr * weight_std` for trainable word vectors."""
    out: list[torch.optim.Optimizer] = [torch.optim.Adam(list(dense), lr=lr)]
    if vectors is not None and vectors.requires_grad:
        # Adam steps are about lr per coordinate: scale by the entries' std (see the module docstring).
        out.append(torch.optim.SparseAdam([vectors], lr=lr * weight_std))
    return out


def epochs_for(rows: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """`epochs`, or more when a small training set would otherwise take fewer than `min_steps` steps."""
    per_epoch = max(math.ceil(rows / batch_size), 1)
    return max(epochs, math.ceil(min_steps / per_epoch))


def fit(
    model: nn.Module,
    step: Step,
    labels: torch.Tensor,
    opts: list[torch.optim.Optimizer],
    epochs: int,
    batch_size: int,
    seed: int,
    lengths: list[int] | None = None,
    loss: Loss | None = None,
) -> nn.Module:
    """Train for `epochs` over `labels`' rows in seeded random batches; return the model in eval mode.

    With `lengths`, each batch holds texts of similar length (transformers' length-grouped shuffling,
    as `finetune` batches): a padded [batch, words, dim] tensor then costs about its real words.
    `loss` replaces the cross-entropy with the labels (a distilled student learns the teacher's logits).
    """
    generator = torch.Generator().manual_seed(seed)
    cross_entropy = nn.CrossEntropyLoss()
    loss_fn = loss or (lambda logits, rows: cross_entropy(logits, labels[rows]))
    model.train()
    for _ in range(epochs):
        if lengths is None:
            order = torch.randperm(len(labels), generator=generator)
        else:
            order = torch.as_tensor(get_length_grouped_indices(lengths, batch_size, generator=generator))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            logits = step(rows)
            for opt in opts:
                opt.zero_grad()
            loss_fn(logits, rows).backward()
            for opt in opts:
                opt.step()
    return model.eval()


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: for these tiny ops thread hand-offs cost more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # measured: 10x faster than 2 threads on a busy 2-core machine
    try:
        yield
    finally:
        torch.set_num_threads(before)
