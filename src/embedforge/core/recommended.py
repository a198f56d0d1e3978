"""The run's recommended matrix: `metrics/similarity.json` names it under `recommended` (the `evaluate`
stage's choice, see `embedforge.evaluate.selection`); its files are `embeddings/<name>.*`, and `evaluate`
also publishes them under the stable stem `recommended/matrix` (`publish_recommended`).

    from embedforge import load_recommended
    emb, vocab = load_recommended()          # in a checkout after `dvc repro` (or `dvc pull`)

Light on purpose: no `evaluate`, and torch (`core.embedding`) only once a matrix is loaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, read_json, staged, write_json

if TYPE_CHECKING:  # torch loads when a matrix does, not on import
    import torch

    from embedforge.core.embedding import LoadOptions, Vocab

METRICS_DIR = "metrics"  # the `evaluate` stage's metrics folder (dvc.yaml)
EMBEDDINGS_DIR = "embeddings"  # the `extract` stage's matrices (core.catalog.DEFAULT_ROOT)
SIMILARITY_FILE = "similarity.json"  # <matrix>.<benchmark>.{spearman,pearson,coverage} or {accuracy,coverage}
RECOMMENDED_KEY = "recommended"  # its key naming the recommended matrix
RECOMMENDED_DIR = "recommended"  # the `evaluate` stage's copy of that matrix (dvc.yaml)
STABLE_STEM = "matrix"  # recommended/matrix.safetensors, recommended/matrix.vocab.parquet
POINTER_FILE = "matrix.json"  # recommended/matrix.json: {"name": <the matrix's name>, "source": <its stem>}
MATRIX_SUFFIXES = (".safetensors", ".vocab.parquet")  # a matrix's files (core.embedding)


def _chosen(root: str | Path) -> str | None:
    """The name under `recommended` in `<root>/metrics/similarity.json`, None when it has none."""
    metrics = Path(root) / METRICS_DIR / SIMILARITY_FILE
    if not staged(metrics).is_file():  # in the evaluate stage: the similarity.json it has just written
        raise EmbedforgeError(f"{metrics}: not found; run dvc repro first (its evaluate stage writes it)")
    document = read_json(metrics)
    name = document.get(RECOMMENDED_KEY) if isinstance(document, dict) else None
    if name is not None and not isinstance(name, str):
        raise EmbedforgeError(f"{metrics}: {RECOMMENDED_KEY} = {name!r}; expected a string")
    return name or None


def recommended_name(root: str | Path = ".") -> str:
    """The name `<root>/metrics/similarity.json` gives under `recommended`; a one-line error when the run
    has none yet."""
    name = _chosen(root)
    if name is None:
        raise EmbedforgeError(
            f"{Path(root) / METRICS_DIR / SIMILARITY_FILE}: no {RECOMMENDED_KEY!r} matrix (no "
            "evaluate.selection_set applied); load a matrix by name with load_embedding"
        )
    return name


def recommended_path(root: str | Path = ".") -> Path:
    """The stem `<root>/embeddings/<name>` of the matrix the run at `root` recommends (for
    `WordVectors.load`, `load_embedding`); a one-line error when the run has no recommendation yet.
    The same files under a name that never changes: `<root>/recommended/matrix` (`stable_path`)."""
    name = recommended_name(root)
    stem = Path(root) / EMBEDDINGS_DIR / name
    if not stem.with_name(f"{name}.safetensors").is_file():
        raise EmbedforgeError(
            f"{stem}.safetensors: the recommended matrix {name!r} is missing; "
            "run dvc repro first (or dvc pull / dvc checkout)"
        )
    return stem


def stable_path(root: str | Path = ".") -> Path:
    """`<root>/recommended/matrix`: the stem of the recommended matrix's copy, the same for every run."""
    return Path(root) / RECOMMENDED_DIR / STABLE_STEM


def load_recommended(
    root: str | Path = ".", **options: Unpack[LoadOptions]
) -> tuple[torch.nn.Embedding, Vocab]:
    """`load_embedding` of the recommended matrix of the run at `root`, with `load_embedding`'s keywords."""
    from embedforge.core.embedding import load_embedding

    return load_embedding(recommended_path(root), **options)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no extra disk) where the file system allows one, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def publish_recommended(root: str | Path = ".", out: str | Path | None = None) -> Path:
    """Write `out` (default `<root>/recommended/`, atomically): `matrix.safetensors` and
    `matrix.vocab.parquet`, the recommended matrix's files hard-linked (copied where links fail), and
    `matrix.json` naming it. Without a recommendation the folder holds `matrix.json` alone, its name null.
    Returns the folder."""
    root = Path(root)
    out = Path(out) if out is not None else root / RECOMMENDED_DIR
    stem = recommended_path(root) if _chosen(root) is not None else None
    with atomic_path(out, is_dir=True) as tmp:
        if stem is not None:
            for suffix in MATRIX_SUFFIXES:
                _link_or_copy(stem.with_name(stem.name + suffix), tmp / (STABLE_STEM + suffix))
        name = None if stem is None else stem.name
        source = None if stem is None else f"{EMBEDDINGS_DIR}/{stem.name}"
        write_json(tmp / POINTER_FILE, {"name": name, "source": source})
    return out
