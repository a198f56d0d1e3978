"""The run's recommended matrix, found by name: `metrics/similarity.json` names it under `recommended`
(see `embedforge.evaluate.selection`), and its files are `embeddings/<name>.*`.

    from embedforge import load_recommended
    emb, vocab = load_recommended()          # in a checkout after `dvc repro` (or `dvc pull`)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from embedforge.core.catalog import DEFAULT_ROOT
from embedforge.core.embedding import Vocab, load_embedding
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import Unknown
from embedforge.evaluate.files import RECOMMENDED_KEY, SIMILARITY_FILE, MetricsDoc

METRICS_DIR = "metrics"  # the `evaluate` stage's metrics folder (dvc.yaml)


def recommended_path(root: str | Path = ".") -> Path:
    """The stem `<root>/embeddings/<name>` of the matrix the run at `root` recommends (for
    `WordVectors.load`, `load_embedding`); a one-line error when the run has no recommendation yet."""
    root = Path(root)
    metrics = root / METRICS_DIR / SIMILARITY_FILE
    if not metrics.is_file():
        raise EmbedforgeError(f"{metrics}: not found; run dvc repro first (its evaluate stage writes it)")
    name = MetricsDoc.read(metrics).text(RECOMMENDED_KEY)
    if not name:
        raise EmbedforgeError(
            f"{metrics}: no {RECOMMENDED_KEY!r} matrix (no evaluate.selection_set applied); "
            "load a matrix by name with load_embedding"
        )
    stem = root / DEFAULT_ROOT / name
    if not stem.with_name(f"{name}.safetensors").is_file():
        raise EmbedforgeError(
            f"{stem}.safetensors: the recommended matrix {name!r} is missing; "
            "run dvc repro first (or dvc pull / dvc checkout)"
        )
    return stem


def load_recommended(
    root: str | Path = ".",
    *,
    unknown: Unknown = "mean",
    seed: int = 0,
    words: Iterable[str] | None = None,
    model_dir: str | Path | None = None,
    freeze: bool = True,
    padding: bool = False,
) -> tuple[torch.nn.Embedding, Vocab]:
    """`load_embedding` of the recommended matrix of the run at `root` (the keywords are its own)."""
    return load_embedding(
        recommended_path(root),
        unknown=unknown,
        seed=seed,
        words=words,
        model_dir=model_dir,
        freeze=freeze,
        padding=padding,
    )
