"""`aggregate` (Bommasani et al., ACL 2020): pool a word's pieces over up to N corpus contexts, then average.

One streaming pass over the segmented corpus serves every vocabulary word at once: each sentence
contributes a context to each of its words still short of `max_contexts` (first occurrence per
sentence); sentences that contribute nothing are never encoded. Pooled vectors are index-added into
running sums, so memory grows with V x d x layers, not with the corpus.
"""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from embedforge.core.encoder import Accumulator, Encoder, token_batches
from embedforge.core.errors import EmbedforgeError
from embedforge.extract.source import Matrix, SourcePass

Item = tuple[list[int], list[tuple[int, int, int]]]  # (ids, [(word row, start, end)])


def select_contexts(
    encoder: Encoder, window: Sequence[Sequence[str]], index: dict[str, int], taken: list[int], limit: int
) -> list[Item]:
    """Encode the sentences that still serve some word; claim one context per (sentence, word)."""
    useful = [s for s in window if any(taken[index[w]] < limit for w in s if w in index)]
    items = []
    for sentence, (ids, spans) in zip(useful, encoder.encode(useful), strict=True):
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


def corpus_pass(src: SourcePass) -> Accumulator:
    """Stream the corpus once; accumulate pooled context vectors for every word at every layer group."""
    if src.corpus is None:
        raise EmbedforgeError(
            "strategy 'aggregate' needs a corpus (windows of segmented sentences); got none"
        )
    enc, cfg = src.encoder, src.cfg
    index = {w: i for i, w in enumerate(src.words)}
    taken = [0] * len(index)
    acc = Accumulator(len(index), len(src.groups), enc.dim)
    bar = tqdm(total=src.corpus_rows, unit="sent", desc=f"aggregate {src.source}", disable=not src.progress)
    for window in src.corpus:
        items = select_contexts(enc, window, index, taken, cfg.max_contexts)
        bar.update(len(window) - len(items))  # sentences that serve no word are skipped
        for batch in token_batches(items, cfg.token_budget):
            spans = [(i, s, e) for i, (_, claims) in enumerate(batch) for _, s, e in claims]
            vectors = enc.pool_batch([ids for ids, _ in batch], spans, src.groups, cfg.pooling)
            acc.add([row for _, claims in batch for row, _, _ in claims], vectors)
            bar.update(len(batch))
    bar.close()
    return acc


def aggregate(src: SourcePass) -> list[Matrix]:
    """Average of in-context vectors; words without any context fall back to their `decontext` rows."""
    acc = corpus_pass(src)
    vectors, counts = acc.means(), acc.counts
    missing = (counts == 0).nonzero().flatten().tolist()
    method = ["aggregate" if c else "fallback:decontext" for c in counts.tolist()]
    if missing:
        fallback = src.decontext_of(missing)
        vectors[:, missing] = fallback.pooled
        for row, has_pieces in zip(missing, fallback.found.tolist(), strict=True):
            if not has_pieces:
                method[row] = "empty"
    return src.per_group("aggregate", vectors, src.info(method, counts))
