"""Strategies without a forward pass: `input` (the model's input table) and `vectors` (a word2vec file)."""

from __future__ import annotations

import re
from pathlib import Path

from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import SubwordComposer
from embedforge.extract.job import Job, Matrix, base_info


def input_table(job: Job) -> list[Matrix]:
    """The model's own input token-embedding rows, pooled over the word's pieces."""
    vectors = SubwordComposer(job.encoder, job.params.pooling)(job.vocab.words)
    found = [bool(p) for p in job.encoder.piece_ids(job.vocab.words)]
    method = ["input" if f else "empty" for f in found]
    wv = WordVectors(job.vocab.words, vectors, base_info(job, method, [0] * len(job.vocab)))
    return [Matrix(f"input_{job.source}", "input", job.source, None, wv)]


def vectors_file(job: Job) -> list[Matrix]:
    """Rows of an existing word2vec file; the unknown-word policy for the words it lacks."""
    path = Path(job.vector_file)
    found = WordVectors.load_word2vec(path, keep=set(job.vocab.words))
    composer = SubwordComposer(job.encoder, job.params.pooling) if job.params.unknown == "subword" else None
    weight = found.vectors(job.vocab.words, job.params.unknown, job.params.seed, composer)
    method = ["vectors" if w in found else f"unknown:{job.params.unknown}" for w in job.vocab.words]
    wv = WordVectors(job.vocab.words, weight, base_info(job, method, [0] * len(job.vocab)))
    return [Matrix(vectors_name(path), "vectors", None, None, wv)]


def vectors_name(path: str | Path) -> str:
    """`data/sgns.zhihu.word.txt` -> `vectors_sgns_zhihu_word`."""
    stem = re.sub(r"\.(txt|bin|vec|w2v)$", "", Path(path).name)
    return "vectors_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)
