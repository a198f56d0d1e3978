"""What `evaluate_all` computes, as types, and `to_metrics`: those results as the metrics JSON documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedforge.core.catalog import MatrixRecord
from embedforge.evaluate.caps import CAPS
from embedforge.evaluate.classification import ClassifierScores
from embedforge.evaluate.curves import CURVES, CurveResults
from embedforge.evaluate.documents import CLASSIFICATION_FILE, NEIGHBOURS_FILE, OOV_FILE, SIMILARITY_FILE
from embedforge.evaluate.probe import ProbeScores
from embedforge.evaluate.similarity import ROWS_KEY, AnalogyResult, Neighbours, SimilarityResult


@dataclass(frozen=True)
class MatrixScores:
    """The intrinsic scores of one matrix, per benchmark name, and its probe words' neighbours."""

    similarity: dict[str, SimilarityResult]
    analogy: dict[str, AnalogyResult]
    neighbours: dict[str, Neighbours | None]  # probe word -> neighbours (None: not in the vocabulary)
    rows: dict[str, int] = field(default_factory=dict)  # similarity.row_counts: total and genuine rows

    def metrics(self) -> dict[str, dict[str, float | None]]:
        """`<benchmark>` -> its numbers, and `rows` -> the row counts, as in metrics/similarity.json."""
        return {
            **{name: r.metrics() for name, r in self.similarity.items()},
            **{name: r.metrics() for name, r in self.analogy.items()},
            **({ROWS_KEY: dict(self.rows)} if self.rows else {}),
        }

    def oov(self) -> dict[str, list[str]]:
        """`<benchmark>` -> the benchmark words missing from the matrix."""
        return {
            **{name: r.oov for name, r in self.similarity.items()},
            **{name: r.oov for name, r in self.analogy.items()},
        }


@dataclass(frozen=True)
class Results:
    """Everything the stage writes, computed before anything is written."""

    records: list[MatrixRecord]  # from embeddings/index.json, in extraction order
    scores: dict[str, MatrixScores]  # matrix name -> scores
    classifier: ClassifierScores
    probe: dict[str, ProbeScores]  # matrix name or random baseline name -> probe scores
    curves: CurveResults = field(default_factory=lambda: CurveResults({}, {}))  # learning curves
    selection: dict[str, Any] | None = None  # similarity.json's `recommended` and `selection` keys
    caps: dict[str, int] | None = None  # classification.json's `caps` (None: probes used whole splits)


def to_metrics(results: Results) -> dict[str, Any]:
    """The JSON documents of metrics/, by file name."""
    words = list(dict.fromkeys(w for s in results.scores.values() for w in s.neighbours))
    return {
        SIMILARITY_FILE: {name: s.metrics() for name, s in results.scores.items()}
        | (results.selection or {}),
        CLASSIFICATION_FILE: {
            "finetuned": results.classifier.to_dict(),
            "probe": {name: p.metrics() for name, p in results.probe.items()},
            CURVES: results.curves.metrics(),
            **({CAPS: dict(results.caps)} if results.caps else {}),
        },
        OOV_FILE: {name: s.oov() for name, s in results.scores.items()},
        NEIGHBOURS_FILE: {
            "words": words,
            "matrices": {
                name: {
                    w: None if found is None else [[n, c] for n, c in found]
                    for w, found in s.neighbours.items()
                }
                for name, s in results.scores.items()
            },
        },
    }
