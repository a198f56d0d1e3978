"""Batches of token sequences for a forward pass, and the per-word running sums extraction builds.

Only extraction batches a corpus by token budget and sums contexts; the encoder itself (`core.encoder`)
is shared with fine-tuning and evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

MAX_PADDING = 0.1  # fraction of a batch's positions
Item = tuple[list[int], Any]  # (ids, payload)


def token_batches(items: list[Item], token_budget: int) -> Iterator[list[Item]]:
    """Sort by length; cut batches of at most `token_budget` padded tokens and little padding.

    A batch is also closed early when adding the next (longer) sequence would make more than
    MAX_PADDING of it padding, provided it already holds a quarter of the budget (big enough for
    efficient matmuls).
    """
    items = sorted(items, key=lambda it: len(it[0]))
    batch: list[Item] = []
    real = 0
    for item in items:
        width = len(item[0])
        padded = (len(batch) + 1) * width
        wasteful = padded - real - width > MAX_PADDING * padded and real >= token_budget // 4
        if batch and (padded > token_budget or wasteful):
            yield batch
            batch, real = [], 0
        batch.append(item)
        real += width
    if batch:
        yield batch


class Accumulator:
    """Running sums [G, V, d] and context counts [V]: memory depends on V x d x layers only."""

    def __init__(self, n_words: int, n_groups: int, dim: int) -> None:
        self.sums = torch.zeros(n_groups, n_words, dim)
        self.counts = torch.zeros(n_words, dtype=torch.long)

    def add(self, word_rows: Sequence[int], vectors: torch.Tensor) -> None:
        """Add pooled vectors [G, n, d] into the rows of their words."""
        index = torch.as_tensor(word_rows, dtype=torch.long)
        self.sums.index_add_(1, index, vectors)
        self.counts.index_add_(0, index, torch.ones_like(index))

    def means(self) -> torch.Tensor:
        """Average per word [G, V, d]; words without contexts stay zero."""
        return self.sums / self._divisor()

    def means_(self) -> torch.Tensor:
        """`means()` in place (the sums become the means): no second [G, V, d] copy at 100k+ words."""
        return self.sums.div_(self._divisor())

    def _divisor(self) -> torch.Tensor:
        return self.counts.clamp(min=1).to(self.sums.dtype)[None, :, None]
