"""What a strategy receives (Job) and returns (Matrix)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import Encoder, Groups, group_label, layer_groups
from embedforge.core.params import ExtractParams
from embedforge.core.prepared import PreparedData
from embedforge.extract.words import Vocabulary


@dataclass
class Job:
    """One strategy run: the vocabulary, settings, and the source's encoder (None for `vectors`)."""

    vocab: Vocabulary
    params: ExtractParams
    source: str | None = None
    encoder: Encoder | None = None
    corpus: PreparedData | None = None
    vector_file: Path | None = None
    progress: bool = True
    # results shared between strategies of one source (e.g. decontext rows reused as aggregate fallback)
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def groups(self) -> Groups:
        """The `layers` param resolved against this source's depth."""
        assert self.encoder is not None
        return layer_groups(self.params.layers, self.encoder.depth, str(self.encoder.dir))


@dataclass
class Matrix:
    """One extracted matrix and its index.json description."""

    name: str
    strategy: str
    source: str | None
    layer: int | list[int] | None
    wv: WordVectors


def layer_suffix(group: tuple[int, ...]) -> str:
    """(4,) -> `L4`; (2, 3) -> `L2_3` (the average of layers 2 and 3)."""
    return "L" + "_".join(str(i) for i in group)


def per_group(job: Job, strategy: str, stacked: torch.Tensor, info: pd.DataFrame) -> list[Matrix]:
    """One Matrix per layer group from stacked vectors [G, V, d]."""
    return [
        Matrix(
            name=f"{strategy}_{job.source}_{layer_suffix(g)}",
            strategy=strategy,
            source=job.source,
            layer=group_label(g),
            wv=WordVectors(job.vocab.words, stacked[i], info),
        )
        for i, g in enumerate(job.groups)
    ]


def base_info(job: Job, method: list[str], contexts: list[int] | torch.Tensor) -> pd.DataFrame:
    """The per-word columns of a vocab file: count, method, contexts."""
    return pd.DataFrame(
        {
            "count": pd.array(job.vocab.counts, dtype="int64"),
            "method": method,
            "contexts": pd.array([int(c) for c in contexts], dtype="int64"),
        }
    )
