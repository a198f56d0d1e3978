"""What `evaluate_all` computes, as types, and `to_metrics`: those results as the metrics JSON documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedforge.core.catalog import MatrixRecord
from embedforge.evaluate.classification import ClassifierScores
from embedforge.evaluate.curves import CurveResults
from embedforge.evaluate.files import (
    CAPS,
    CLASSIFICATION_FILE,
    CURVES,
    FINETUNED_KEY,
    NEIGHBOURS_FILE,
    OOV_FILE,
    PROBE_KEY,
    RECOMMENDED_KEY,
    ROWS_KEY,
    SELECTION_KEY,
    SIMILARITY_FILE,
)
from embedforge.evaluate.probe import ProbeScores
from embedforge.evaluate.similarity import AnalogyResult, Neighbours, SimilarityResult

Scored = dict[str, float | None]  # spearman, low, high, pairs (and coverage); or difference, low, high, pairs


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
class Selection:
    """The recommended matrix and the record of how it was chosen (`evaluate.selection.recommend`)."""

    recommended: str
    rule: str
    selection_set: str  # the set's name (file stem)
    file: str
    half: str  # which pairs the dev half holds
    seen: list[str]  # what the rule saw: the dev half
    partly_seen: list[str]  # the whole selection set
    held_out: list[str]  # everything else: the held half, the other sets, the analogy sets
    dev: dict[str, float | None]  # candidate -> its dev-half Spearman
    resamples: int
    confidence: float
    matrices: dict[str, dict[str, Scored]]  # shown matrix -> set or half -> Spearman with its interval
    baseline: str | None = None  # the tutorial matrix the recommended one is compared with
    difference: dict[str, Scored] | None = None  # set or half -> recommended − baseline, paired

    def to_dict(self) -> dict[str, Any]:
        """similarity.json's `recommended` and `selection` keys."""
        record: dict[str, Any] = {
            "rule": self.rule,
            "set": self.selection_set,
            "file": self.file,
            "half": self.half,
            "seen": list(self.seen),
            "partly_seen": list(self.partly_seen),
            "held_out": list(self.held_out),
            "dev": dict(self.dev),
            "resamples": self.resamples,
            "confidence": self.confidence,
            "matrices": self.matrices,
        }
        if self.baseline is not None:
            record |= {"baseline": self.baseline, "difference": self.difference}
        return {RECOMMENDED_KEY: self.recommended, SELECTION_KEY: record}


@dataclass(frozen=True)
class Results:
    """Everything the stage writes, computed before anything is written."""

    records: list[MatrixRecord]  # from embeddings/index.json, in extraction order
    scores: dict[str, MatrixScores]  # matrix name -> scores
    classifier: ClassifierScores
    probe: dict[str, ProbeScores]  # matrix name or random baseline name -> probe scores
    curves: CurveResults = field(default_factory=lambda: CurveResults({}, {}))  # learning curves
    selection: Selection | None = None  # similarity.json's `recommended` and `selection` keys
    caps: dict[str, int] | None = None  # classification.json's `caps` (None: probes used whole splits)


def to_metrics(results: Results) -> dict[str, Any]:
    """The JSON documents of metrics/, by file name."""
    words = list(dict.fromkeys(w for s in results.scores.values() for w in s.neighbours))
    return {
        SIMILARITY_FILE: {name: s.metrics() for name, s in results.scores.items()}
        | (results.selection.to_dict() if results.selection else {}),
        CLASSIFICATION_FILE: {
            FINETUNED_KEY: results.classifier.to_dict(),
            PROBE_KEY: {name: p.metrics() for name, p in results.probe.items()},
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
