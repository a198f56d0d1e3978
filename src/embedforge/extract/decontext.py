"""Strategies that encode each word alone: `cls` (the tutorial baseline) and `decontext`.

`decontext` reads the source's decontext pass (`SourcePass.decontext`: the word alone or inside
`extract.template`, its pieces or every position pooled at every requested layer group); `cls` reads
the bare word's `[CLS] word [SEP]` pass (`SourcePass.bare`, the same pass when no template is set).
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
    """The tutorial baseline: encode the word by itself and take the last layer's [CLS] vector."""
    rows = src.bare
    method = ["cls" if f else "empty" for f in rows.found.tolist()]
    wv = WordVectors(src.words, rows.cls, src.info(method))
    return [Matrix(matrix_name("cls", src.source), "cls", src.source, src.encoder.depth, wv)]
