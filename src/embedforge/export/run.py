"""The export driver: choose matrices by the `export` params' name globs, write each format in one folder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from embedforge.core.catalog import Catalog, matching
from embedforge.core.embedding import WordVectors
from embedforge.core.files import write_text
from embedforge.core.params import ExportParams
from embedforge.export.compress import pca
from embedforge.export.model2vec import write_model2vec
from embedforge.export.projector import CONFIG_FILE, write_projector

log = logging.getLogger(__name__)
FORMATS = ("word2vec", "word2vec_binary", "model2vec", "projector")  # the keys of ExportParams
README = "README.md"


def select(params: ExportParams, names: Sequence[str]) -> dict[str, list[str]]:
    """The matrix names each format exports, in catalog order; a pattern that matches none is an error."""
    chosen = {}
    for fmt in FORMATS:
        chosen[fmt] = matching(getattr(params, fmt), names, f"export.{fmt}")
    return chosen


def files(fmt: str, name: str) -> str:
    """Where format `fmt` puts matrix `name`, relative to the exports folder."""
    return {
        "word2vec": f"word2vec/{name}.txt",
        "word2vec_binary": f"word2vec/{name}.bin",
        "model2vec": f"model2vec/{name}/",
        "projector": f"projector/{name}.tsv, projector/{name}.meta.tsv",
    }[fmt]


def readme(chosen: dict[str, list[str]], params: ExportParams) -> str:
    """exports/README.md: what is here and where it came from, or how to ask for exports."""
    head = (
        "# exports/\n\nWritten by the `export` stage from `embeddings/`, as params.yaml's `export:` asks.\n\n"
    )
    lines = [f"- {files(fmt, n)} ({fmt})" for fmt in FORMATS for n in chosen[fmt]]
    if lines and (params.pca_dims or params.quantize_to != "float32"):
        dims = f"PCA to {params.pca_dims} dimensions" if params.pca_dims else "every dimension"
        lines.append(f"- compression: {dims}; model2vec matrices stored as {params.quantize_to}")
    if chosen["projector"]:
        lines.append(f"- projector/{CONFIG_FILE}: open with `tensorboard --logdir exports/projector`")
    if not lines:
        return head + "No exports requested: list matrix names or globs under `export:` in params.yaml.\n"
    return head + "\n".join(lines) + "\n"


def run_export(
    params: ExportParams, catalog: Catalog, out_dir: str | Path, language: str = "zh"
) -> dict[str, list[str]]:
    """Write the requested exports of `catalog`'s matrices and README.md into `out_dir`; return the choice.

    `language` (prepare's) chooses how the model2vec tokenizer segments raw text.
    """
    out = Path(out_dir)
    chosen = select(params, [r.name for r in catalog.records()])
    out.mkdir(parents=True, exist_ok=True)
    projected: dict[str, WordVectors] = {}
    for name in dict.fromkeys(n for names in chosen.values() for n in names):
        wv = pca(catalog.load(name), params.pca_dims)  # once per matrix, whatever the number of formats
        if name in chosen["word2vec"]:
            wv.save_word2vec(out / files("word2vec", name))
        if name in chosen["word2vec_binary"]:
            wv.save_word2vec(out / files("word2vec_binary", name), binary=True)
        if name in chosen["model2vec"]:
            write_model2vec(wv, out / files("model2vec", name), language=language, storage=params.quantize_to)
        if name in chosen["projector"]:
            projected[name] = wv
        log.info("exported %s", name)
    if projected:
        write_projector(projected, out / "projector")
    write_text(out / README, readme(chosen, params))
    return chosen
