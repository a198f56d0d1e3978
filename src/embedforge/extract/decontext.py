"""Strategies that encode each word alone: `cls` (the tutorial baseline) and `decontext`.

Both read one shared forward pass over `[CLS] word [SEP]` sequences: the word's pieces are pooled at
every requested layer group, and the [CLS] position is kept at the last layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import Accumulator, Encoder, Groups, token_batches
from embedforge.extract.job import Job, Matrix, base_info, per_group


def encode_alone(
    encoder: Encoder, words: Sequence[str], groups: Groups, pooling: str, token_budget: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode every word alone in token-budget batches.

    Returns pooled pieces [G, n, d], the [CLS] vectors of the last group [n, d], and [n] flags for
    words that have pieces at all (a word without pieces keeps zero rows).
    """
    n = len(words)
    items = [(ids, (row, spans[0])) for row, (ids, spans) in enumerate(encoder.encode([[w] for w in words]))]
    items = [it for it in items if it[1][1] is not None]
    # rows 0..n-1 accumulate the word's pooled pieces, rows n..2n-1 its [CLS] vector
    acc = Accumulator(2 * n, len(groups), encoder.dim)
    for batch in token_batches(items, token_budget):
        spans = [span for i, (_, (_, (s, e))) in enumerate(batch) for span in ((i, s, e), (i, 0, 1))]
        rows = [r for _, (row, _) in batch for r in (row, n + row)]
        acc.add(rows, encoder.pool_batch([ids for ids, _ in batch], spans, groups, pooling))
    means = acc.means()
    return means[:, :n], means[-1, n:], acc.counts[:n] > 0


def isolated_vectors(job: Job) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """encode_alone over the job's vocabulary at its layer groups (+ the last layer), cached per source."""
    groups, depth = job.groups, job.encoder.depth
    key = ("isolated", tuple(groups), job.params.pooling)
    if key not in job.cache:
        pooled, cls_rows, found = encode_alone(
            job.encoder, job.vocab.words, [*groups, (depth,)], job.params.pooling, job.params.token_budget
        )
        job.cache[key] = (pooled[: len(groups)], cls_rows, found)
    return job.cache[key]


def decontext(job: Job) -> list[Matrix]:
    """Encode the word alone; pool its pieces' hidden states at each requested layer group."""
    vectors, _, found = isolated_vectors(job)
    method = ["decontext" if f else "empty" for f in found.tolist()]
    return per_group(job, "decontext", vectors, base_info(job, method, [0] * len(job.vocab)))


def cls(job: Job) -> list[Matrix]:
    """The tutorial baseline: encode the word alone and take the last layer's [CLS] vector."""
    _, vectors, found = isolated_vectors(job)
    method = ["cls" if f else "empty" for f in found.tolist()]
    wv = WordVectors(job.vocab.words, vectors, base_info(job, method, [0] * len(job.vocab)))
    return [Matrix(f"cls_{job.source}", "cls", job.source, job.encoder.depth, wv)]
