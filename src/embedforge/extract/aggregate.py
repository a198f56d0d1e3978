"""`aggregate` (Bommasani et al., ACL 2020): pool a word's pieces over up to N corpus contexts, then average.

One streaming pass over the segmented corpus serves every vocabulary word at once: each sentence
contributes a context to each of its words still short of `max_contexts` (first occurrence per
sentence); sentences that contribute nothing are never encoded. Pooled vectors are index-added into
running sums, so memory grows with V x d x layers, not with the corpus: the sums take
V x layer groups x d x 4 bytes (logged at the start of the pass), plus one window of sentences.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from embedforge.core.encoder import Encoder, Span
from embedforge.core.errors import EmbedforgeError
from embedforge.extract.batching import Accumulator, token_batches
from embedforge.extract.resume import load_state, save_state
from embedforge.extract.shard import Shard
from embedforge.extract.source import Matrix, SourcePass

log = logging.getLogger(__name__)
# Past this share of the vocabulary falling back to decontext, `aggregate` warns: its matrices would be
# decontext matrices under another name (a corpus of empty files, or one that misses the vocabulary).
FALLBACK_WARN_SHARE = 0.5

Item = tuple[list[int], list[tuple[int, int, int]]]  # (ids, [(word row, start, end)])
Encoded = tuple[list[int], list[Span | None]]  # `Encoder.encode` of one sentence


def serves(sentence: Sequence[str], index: dict[str, int], taken: list[int], limit: int) -> bool:
    """Whether a sentence holds a vocabulary word still short of `limit` contexts."""
    return any(taken[index[w]] < limit for w in sentence if w in index)


def select_contexts(
    encoder: Encoder, window: Sequence[Sequence[str]], index: dict[str, int], taken: list[int], limit: int
) -> list[Item]:
    """Encode the sentences that still serve some word; claim one context per (sentence, word)."""
    useful = [s for s in window if serves(s, index, taken, limit)]
    return claim_contexts(useful, encoder.encode(useful), index, taken, limit)


def claim_contexts(
    sentences: Sequence[Sequence[str]],
    encoded: list[Encoded],
    index: dict[str, int],
    taken: list[int],
    limit: int,
) -> list[Item]:
    """In corpus order, each sentence gives a context to each of its words still short of `limit`."""
    items = []
    for sentence, (ids, spans) in zip(sentences, encoded, strict=True):
        claims, seen = [], set()
        for word, span in zip(sentence, spans, strict=True):
            row = index.get(word)
            if row is None or span is None or row in seen or taken[row] >= limit:
                continue  # not a vocabulary word, truncated away, or already served
            seen.add(row)
            taken[row] += 1
            claims.append((row, *span))
        if claims:
            items.append((ids, claims))
    return items


def select_sharded(
    encoder: Encoder,
    group: list[Sequence[Sequence[str]]],
    index: dict[str, int],
    taken: list[int],
    limit: int,
    shard: Shard,
) -> list[Item]:
    """This rank's contexts in one step of `shard.world` windows, exactly as one process would pick them.

    Ranks exchange, per vocabulary word, how many of their window's sentences hold it (with pieces):
    a word's contexts before this rank's window are then min(limit, taken + those of lower ranks), so
    every rank claims what a single process reading the windows in order would claim.
    """
    mine = group[shard.rank] if shard.rank < len(group) else []
    useful = [s for s in mine if serves(s, index, taken, limit)]
    encoded = encoder.encode(useful)
    rows = [
        row
        for sentence, (_, spans) in zip(useful, encoded, strict=True)
        for row in {
            index[w] for w, span in zip(sentence, spans, strict=True) if span is not None and w in index
        }
    ]
    held = torch.bincount(torch.as_tensor(rows, dtype=torch.long), minlength=len(index))
    running = torch.as_tensor(taken, dtype=torch.long)
    before = taken
    for rank, other in enumerate(shard.gather(held)):
        if rank == shard.rank:
            before = running.tolist()
        running = torch.clamp(running + other, max=limit)
    items = claim_contexts(useful, encoded, index, before, limit)
    taken[:] = running.tolist()
    return items


def corpus_pass(src: SourcePass) -> Accumulator:
    """Stream the corpus once; accumulate pooled context vectors for every word at every layer group.

    Under torchrun each rank encodes the windows of its steps (`select_sharded`); with `src.checkpoint`
    the pass saves its state every `extract.checkpoint_windows` windows and resumes from the last one.
    """
    if src.corpus is None:
        raise EmbedforgeError(
            "strategy 'aggregate' needs a corpus (windows of segmented sentences); got none"
        )
    enc, cfg, shard = src.encoder, src.cfg, src.shard
    index = {w: i for i, w in enumerate(src.words)}
    taken = [0] * len(index)
    acc = Accumulator(len(index), len(src.groups), enc.dim)
    log.info(
        "aggregate %s: accumulators %d words x %d layer groups x %d dims x 4 bytes = %.1f MB",
        src.source,
        len(index),
        len(src.groups),
        enc.dim,
        acc.sums.numel() * 4 / 2**20,
    )
    done = 0  # windows already in the sums (from a checkpoint)
    if src.checkpoint is not None and (state := load_state(src.checkpoint)) is not None:
        done, taken = state.windows, state.taken.tolist()
        if shard.main:  # the other ranks add their shares to zero sums
            acc.sums, acc.counts = state.sums, state.counts
        log.info("aggregate %s: resuming after %d corpus windows (%s)", src.source, done, src.checkpoint)
    windows = iter(src.corpus)
    skipped = sum(len(w) for w in itertools.islice(windows, done))
    bar = tqdm(
        total=src.corpus_rows,
        initial=skipped,
        unit="sent",
        desc=f"aggregate {src.source}",
        disable=not (src.progress and shard.main),
    )
    saved = done
    for group in shard.steps(windows):
        if shard.world == 1:
            items = select_contexts(enc, group[0], index, taken, cfg.max_contexts)
            bar.update(len(group[0]) - len(items))  # sentences that serve no word are skipped
        else:
            items = select_sharded(enc, group, index, taken, cfg.max_contexts, shard)
        for batch in token_batches(items, cfg.token_budget):
            spans = [(i, s, e) for i, (_, claims) in enumerate(batch) for _, s, e in claims]
            vectors = enc.pool_batch([ids for ids, _ in batch], spans, src.groups, cfg.pooling)
            acc.add([row for _, claims in batch for row, _, _ in claims], vectors)
            if shard.world == 1:
                bar.update(len(batch))
        if shard.world > 1:
            bar.update(sum(len(w) for w in group))
        done += len(group)
        if src.checkpoint is not None and cfg.checkpoint_windows and done - saved >= cfg.checkpoint_windows:
            save_state(src.checkpoint, acc, taken, done, shard)
            saved = done
    bar.close()
    shard.sum_(acc.sums, acc.counts)
    return acc


def aggregate(src: SourcePass) -> list[Matrix]:
    """Average of in-context vectors; words without any context fall back to their `decontext` rows."""
    acc = corpus_pass(src)
    vectors, counts = acc.means(), acc.counts
    missing = (counts == 0).nonzero().flatten().tolist()
    method = ["aggregate" if c else "fallback:decontext" for c in counts.tolist()]
    if len(missing) > FALLBACK_WARN_SHARE * len(method) and src.shard.main:
        log.warning(
            "aggregate (%s): %d of %d words have no context in the corpus and fall back to decontext rows; "
            "the aggregate matrices are then mostly decontext (check extract.corpus holds text)",
            src.source,
            len(missing),
            len(method),
        )
    if missing:
        fallback = src.decontext_of(missing)
        vectors[:, missing] = fallback.pooled
        for row, has_pieces in zip(missing, fallback.found.tolist(), strict=True):
            if not has_pieces:
                method[row] = "empty"
    return src.per_group("aggregate", vectors, src.info(method, counts))
