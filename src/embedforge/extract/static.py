"""Strategies without a forward pass: `input` (the model's input table) and `vectors` (a word2vec file)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from embedforge.embedding import WordVectors
from embedforge.extract.encoder import Encoder, reduce_pieces
from embedforge.extract.job import Job, Matrix, base_info


class SubwordComposer:
    """Vectors for any words: their subword pieces' rows of a model's input embedding table, pooled."""

    def __init__(self, model: str | Path | Encoder, pooling: str = "mean") -> None:
        self.encoder = model if isinstance(model, Encoder) else Encoder(model)
        self.pooling = pooling

    def __call__(self, words: list[str]) -> torch.Tensor:
        """[n, d]; a word with no pieces gets a zero row."""
        pieces = self.encoder.piece_ids(words)
        out = torch.zeros(len(words), self.encoder.dim)
        rows = [i for i, p in enumerate(pieces) if p]
        if rows:
            lengths = torch.tensor([len(pieces[i]) for i in rows])
            flat = torch.tensor([t for i in rows for t in pieces[i]])
            out[rows] = reduce_pieces(self.encoder.input_table()[flat][None], lengths, self.pooling)[0]
        return out


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
