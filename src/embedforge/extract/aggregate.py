"""`aggregate` (Bommasani et al., ACL 2020): pool a word's pieces over up to N corpus contexts, then average.

One streaming pass over the segmented corpus serves every vocabulary word at once: each sentence
contributes a context to each of its words still short of `max_contexts` (first occurrence per
sentence); sentences that contribute nothing are never encoded. Pooled vectors are index-added into
running sums, so memory grows with V x d x layers, not with the corpus.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from embedforge.core.encoder import Accumulator, Encoder, token_batches
from embedforge.extract.decontext import encode_alone, isolated_vectors
from embedforge.extract.job import Job, Matrix, base_info, per_group

CORPUS_SPLIT = "train"  # the labelled training split is the default corpus
Item = tuple[list[int], list[tuple[int, int, int]]]  # (ids, [(word row, start, end)])


def select_contexts(
    encoder: Encoder, window: list[list[str]], index: dict[str, int], taken: list[int], limit: int
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


def corpus_pass(job: Job) -> Accumulator:
    """Stream the corpus once; accumulate pooled context vectors for every word at every layer group."""
    enc, params = job.encoder, job.params
    index = {w: i for i, w in enumerate(job.vocab.words)}
    taken = [0] * len(index)
    acc = Accumulator(len(index), len(job.groups), enc.dim)
    bar = tqdm(
        total=job.corpus.rows(CORPUS_SPLIT),
        unit="sent",
        desc=f"aggregate {job.source}",
        disable=not job.progress,
    )
    for window in job.corpus.sentences(CORPUS_SPLIT):
        items = select_contexts(enc, window, index, taken, params.max_contexts)
        bar.update(len(window) - len(items))  # sentences that serve no word are skipped
        for batch in token_batches(items, params.token_budget):
            spans = [(i, s, e) for i, (_, claims) in enumerate(batch) for _, s, e in claims]
            vectors = enc.pool_batch([ids for ids, _ in batch], spans, job.groups, params.pooling)
            acc.add([row for _, claims in batch for row, _, _ in claims], vectors)
            bar.update(len(batch))
    bar.close()
    return acc


def aggregate(job: Job) -> list[Matrix]:
    """Average of in-context vectors; words without any context fall back to `decontext`."""
    acc = corpus_pass(job)
    vectors, counts = acc.means(), acc.counts
    missing = (counts == 0).nonzero().flatten().tolist()
    method = ["aggregate" if c else "fallback:decontext" for c in counts.tolist()]
    if missing:
        key = ("isolated", tuple(job.groups), job.params.pooling)
        if key in job.cache:  # decontext already ran for this source
            pooled, _, found = isolated_vectors(job)
            vectors[:, missing], found = pooled[:, missing], found[missing]
        else:  # encode only the words that need it
            words = [job.vocab.words[i] for i in missing]
            p = job.params
            pooled, _, found = encode_alone(job.encoder, words, job.groups, p.pooling, p.token_budget)
            vectors[:, missing] = pooled
        for row, has_pieces in zip(missing, found.tolist(), strict=True):
            if not has_pieces:
                method[row] = "empty"
    return per_group(job, "aggregate", vectors, base_info(job, method, counts))
