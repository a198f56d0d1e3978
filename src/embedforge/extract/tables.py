"""Strategies without a forward pass: `input` (the model's input table) and `vectors` (a word2vec file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from embedforge.core.catalog import matrix_name, vectors_name
from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import Encoder, SubwordComposer
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import ExtractParams
from embedforge.extract.source import Matrix, SourcePass, word_info


def input_table(src: SourcePass) -> list[Matrix]:
    """The model's own input token-embedding rows, pooled over the word's pieces."""
    vectors = SubwordComposer(src.encoder, src.cfg.pooling)(src.words)
    found = [bool(p) for p in src.encoder.piece_ids(src.words)]
    method = ["input" if f else "empty" for f in found]
    wv = WordVectors(src.words, vectors, src.info(method))
    return [Matrix(matrix_name("input", src.source), "input", src.source, None, wv, pooling=src.cfg.pooling)]


def vectors_file(
    path: str | Path, words: list[str], counts: Sequence[int], cfg: ExtractParams, encoder: Encoder | None
) -> Matrix:
    """Rows of an existing word2vec file; `cfg.unknown` for the words it lacks (`subword`: from `encoder`)."""
    found = WordVectors.load_word2vec(path, keep=set(words))
    weight = found.vectors(words, cfg.unknown, cfg.seed, unknown_composer(cfg, encoder))
    method = ["vectors" if w in found else f"unknown:{cfg.unknown}" for w in words]
    wv = WordVectors(words, weight, word_info(counts, method))
    return Matrix(vectors_name(path), "vectors", None, None, wv)


def unknown_composer(cfg: ExtractParams, encoder: Encoder | None) -> SubwordComposer | None:
    """What `unknown = subword` composes a missing word's vector from (None for the other policies)."""
    if cfg.unknown != "subword":
        return None
    if encoder is None:
        raise EmbedforgeError("extract.unknown = 'subword' needs an encoder to compose from; got none")
    return SubwordComposer(encoder, cfg.pooling)
