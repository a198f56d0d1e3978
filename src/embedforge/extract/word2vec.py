"""The `word2vec` strategy: a baseline trained with gensim on the same training corpus, in the same shape.

Same vocabulary rows as every other matrix, vector size = the encoder's hidden size (or
`extract.w2v_vector_size`), words the corpus lacks get the `extract.unknown` policy. Deterministic: one
worker thread, a fixed seed, and a hash of words that does not change between interpreter runs (gensim's
default, Python's `hash`, is salted per process unless PYTHONHASHSEED is set).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from gensim.models import Word2Vec

from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import Encoder
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import ExtractParams
from embedforge.extract.source import Corpus, Matrix, word_info
from embedforge.extract.strategy import WORD2VEC
from embedforge.extract.tables import unknown_composer


def stable_hash(text: str) -> int:
    """A hash of a string that is the same in every process (seeds gensim's initial vectors)."""
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(sentences: list[list[str]], dim: int, cfg: ExtractParams) -> WordVectors:
    """Skip-gram (or CBOW) vectors of every corpus word seen at least `w2v_min_count` times."""
    if not any(sentences):
        raise EmbedforgeError("word2vec: the training corpus has no words; expected segmented sentences")
    model = Word2Vec(
        sentences=sentences,
        vector_size=dim,
        window=cfg.w2v_window,
        min_count=cfg.w2v_min_count,
        sg=1 if cfg.w2v_sg else 0,
        negative=cfg.w2v_negative,
        epochs=cfg.w2v_epochs,
        seed=cfg.seed,
        workers=1,  # more threads make the result depend on thread scheduling
        hashfxn=stable_hash,
    )
    kv = model.wv
    return WordVectors(list(kv.index_to_key), torch.as_tensor(kv.vectors.copy(), dtype=torch.float32))


def word2vec_matrix(
    corpus: Corpus,
    words: list[str],
    counts: Sequence[int],
    dim: int,
    cfg: ExtractParams,
    encoder: Encoder | None = None,
) -> Matrix:
    """The `word2vec` matrix: rows for `words`, trained on `corpus` (windows of segmented sentences)."""
    sentences = [list(s) for window in corpus for s in window]
    found = train_word2vec(sentences, cfg.w2v_vector_size or dim, cfg)
    weight = found.vectors(words, cfg.unknown, cfg.seed, unknown_composer(cfg, encoder))
    method = [WORD2VEC if w in found else f"unknown:{cfg.unknown}" for w in words]
    return Matrix(WORD2VEC, WORD2VEC, None, None, WordVectors(words, weight, word_info(counts, method)))
