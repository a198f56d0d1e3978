"""Intrinsic evaluation of one WordVectors matrix: word similarity, 3CosAdd analogy, nearest neighbours."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import pandas as pd
import torch
from scipy import stats

from embedforge.core.benchmarks import Analogy, Pair
from embedforge.core.embedding import WordVectors

MIN_PAIRS = 3  # fewer covered pairs than this give no meaningful correlation
# A row is genuine when its strategy made it; these `method` values mark a stand-in (extract's vocab files):
# `fallback:decontext` (aggregate without corpus contexts), `unknown:*` (vectors the file lacks), `empty`.
STAND_IN_PREFIXES = ("fallback:", "unknown:")
EMPTY = "empty"

Neighbours = list[tuple[str, float]]  # (word, cosine), most similar first


@dataclass
class SimilarityResult:
    """Correlation of cosine similarity with human scores on the pairs whose words are both known."""

    spearman: float | None
    pearson: float | None
    used: int
    total: int
    oov: list[str]
    scores: pd.DataFrame = field(repr=False)  # word1, word2, human, cosine for the covered pairs
    genuine: int = 0  # covered pairs whose two words both have genuine rows

    @property
    def coverage(self) -> float:
        return self.used / self.total if self.total else 0.0

    def metrics(self) -> dict[str, float | None]:
        """The numbers that go to metrics/similarity.json (`coverage` counts every row, fallbacks too)."""
        return {
            "spearman": _round(self.spearman),
            "pearson": _round(self.pearson),
            "coverage": _round(self.coverage),
            "genuine_coverage": _round(self.genuine / self.total if self.total else 0.0),
        }


@dataclass
class AnalogyResult:
    """3CosAdd accuracy on the questions whose four words are all known."""

    correct: int
    used: int
    total: int
    oov: list[str]
    genuine: int = 0  # covered questions whose four words all have genuine rows

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.used if self.used else None

    @property
    def coverage(self) -> float:
        return self.used / self.total if self.total else 0.0

    def metrics(self) -> dict[str, float | None]:
        """The numbers that go to metrics/similarity.json (`coverage` counts every row, fallbacks too)."""
        return {
            "accuracy": _round(self.accuracy),
            "coverage": _round(self.coverage),
            "genuine_coverage": _round(self.genuine / self.total if self.total else 0.0),
        }


def _round(x: float | None, digits: int = 4) -> float | None:
    """Round for the metrics files; NaN becomes None (JSON null)."""
    return None if x is None or math.isnan(x) else round(float(x), digits)


def genuine_rows(wv: WordVectors) -> list[bool]:
    """Per row: made by the matrix's own strategy (no `method` column: every row is)."""
    if "method" not in wv.info or len(wv.info) != len(wv):
        return [True] * len(wv)
    method = wv.info["method"].astype(str)
    return (~(method.str.startswith(STAND_IN_PREFIXES) | (method == EMPTY))).tolist()


def row_counts(wv: WordVectors) -> dict[str, int]:
    """How many rows the matrix has, and how many of them are genuine (not a fallback or stand-in)."""
    return {"total": len(wv), "genuine": sum(genuine_rows(wv))}


def unit_rows(wv: WordVectors) -> torch.Tensor:
    """The matrix with every row scaled to unit length (all-zero rows stay zero)."""
    return torch.nn.functional.normalize(wv.weight, dim=1)


def _correlation(fn: object, x: list[float], y: list[float]) -> float | None:
    """scipy correlation statistic, or None when it is undefined (too few pairs, constant input)."""
    if len(x) < MIN_PAIRS:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
        value = float(fn(x, y)[0])  # type: ignore[operator]
    return None if math.isnan(value) else value


def word_similarity(wv: WordVectors, pairs: list[Pair], unit: torch.Tensor | None = None) -> SimilarityResult:
    """Spearman and Pearson of cosine similarity against the human scores, with coverage and OOV words."""
    unit = unit_rows(wv) if unit is None else unit
    known = [p for p in pairs if p.word1 in wv.index and p.word2 in wv.index]
    oov = sorted({w for p in pairs for w in (p.word1, p.word2) if w not in wv.index})
    real = genuine_rows(wv)
    rows1 = torch.tensor([wv.index[p.word1] for p in known], dtype=torch.long)
    rows2 = torch.tensor([wv.index[p.word2] for p in known], dtype=torch.long)
    cosine = (unit[rows1] * unit[rows2]).sum(dim=1).tolist() if known else []
    human = [p.score for p in known]
    scores = pd.DataFrame(
        {
            "word1": [p.word1 for p in known],
            "word2": [p.word2 for p in known],
            "human": human,
            "cosine": [round(c, 6) for c in cosine],
        }
    )
    return SimilarityResult(
        spearman=_correlation(stats.spearmanr, human, cosine),
        pearson=_correlation(stats.pearsonr, human, cosine),
        used=len(known),
        total=len(pairs),
        oov=oov,
        scores=scores,
        genuine=sum(real[wv.index[p.word1]] and real[wv.index[p.word2]] for p in known),
    )


def analogy_accuracy(
    wv: WordVectors, questions: list[Analogy], unit: torch.Tensor | None = None, chunk: int = 512
) -> AnalogyResult:
    """3CosAdd: the answer is argmax cos(x, b - a + c) over the vocabulary, excluding a, b and c."""
    unit = unit_rows(wv) if unit is None else unit
    known = [q for q in questions if all(w in wv.index for w in (q.a, q.b, q.c, q.d))]
    oov = sorted({w for q in questions for w in (q.a, q.b, q.c, q.d) if w not in wv.index})
    correct = 0
    for start in range(0, len(known), chunk):
        batch = known[start : start + chunk]
        ids = torch.tensor([[wv.index[w] for w in (q.a, q.b, q.c, q.d)] for q in batch], dtype=torch.long)
        target = unit[ids[:, 1]] - unit[ids[:, 0]] + unit[ids[:, 2]]
        scores = target @ unit.T
        scores.scatter_(1, ids[:, :3], float("-inf"))  # the question words are never the answer
        correct += int((scores.argmax(dim=1) == ids[:, 3]).sum())
    real = genuine_rows(wv)
    genuine = sum(all(real[wv.index[w]] for w in (q.a, q.b, q.c, q.d)) for q in known)
    return AnalogyResult(correct=correct, used=len(known), total=len(questions), oov=oov, genuine=genuine)


def nearest_neighbours(
    wv: WordVectors, words: list[str], k: int, unit: torch.Tensor | None = None
) -> dict[str, Neighbours | None]:
    """The k most cosine-similar other words of each probe word (None for a word not in the vocabulary)."""
    unit = unit_rows(wv) if unit is None else unit
    result: dict[str, Neighbours | None] = {}
    for word in words:
        if word not in wv.index:
            result[word] = None
            continue
        row = wv.index[word]
        sims = unit @ unit[row]
        sims[row] = float("-inf")
        top = torch.topk(sims, min(k, len(wv) - 1))
        result[word] = [
            (wv.words[i], round(float(s), 3)) for s, i in zip(top.values, top.indices, strict=True)
        ]
    return result
