"""Strategies that encode each word alone: `cls` (the tutorial baseline) and `decontext`.

Both read the source's one shared decontext pass (`SourcePass.decontext`) over `[CLS] word [SEP]`
sequences: the word's pieces pooled at every requested layer group, and [CLS] at the last layer.
"""

from __future__ import annotations

from embedforge.core.catalog import matrix_name
from embedforge.core.embedding import WordVectors
from embedforge.extract.source import Matrix, SourcePass


def decontext(src: SourcePass) -> list[Matrix]:
    """Encode the word alone; pool its pieces' hidden states at each requested layer group."""
    rows = src.decontext
    method = ["decontext" if f else "empty" for f in rows.found.tolist()]
    return src.per_group("decontext", rows.pooled, src.info(method))


def cls(src: SourcePass) -> list[Matrix]:
    """The tutorial baseline: encode the word alone and take the last layer's [CLS] vector."""
    rows = src.decontext
    method = ["cls" if f else "empty" for f in rows.found.tolist()]
    wv = WordVectors(src.words, rows.cls, src.info(method))
    return [Matrix(matrix_name("cls", src.source), "cls", src.source, src.encoder.depth, wv)]
