"""The recommended matrix, chosen by a stated rule that sees one half of one set, with bootstrap intervals.

Rule (`choose`): among the matrices that are not baselines (`cls`, `input`), the one with the highest
Spearman on the dev half of `evaluate.selection_set` (its pairs on odd line numbers, `dev_half`); ties go
to the first in index order. Everything else (the even half, the other sets, the analogies) is held out.
For the recommended matrix, the tutorial `cls_finetuned` and any `vectors_*` matrix (e.g. a peer's vectors),
each similarity set and each half gets Spearman with a seeded percentile bootstrap 95 % interval, paired
over pairs, and the recommended − cls_finetuned difference gets one too (over the pairs both cover).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from embedforge.core.benchmarks import Pair, benchmark_name
from embedforge.core.catalog import TUTORIAL_MATRIX, MatrixRecord, Strategy
from embedforge.core.params import EvaluateParams
from embedforge.evaluate.results import MatrixScores, Selection
from embedforge.evaluate.similarity import MIN_PAIRS, SimilarityResult

BASELINE_STRATEGIES = frozenset({Strategy.CLS, Strategy.INPUT})  # read the others against: never recommended
PEER_STRATEGIES = frozenset({Strategy.VECTORS})  # other people's vectors: shown beside the recommended matrix
RESAMPLES = 400  # a few hundred keep every interval under a second
CONFIDENCE = 0.95
DEV, HELD = "dev", "held"  # the halves of the selection set, as `<set>:dev` / `<set>:held`


def dev_half(pairs: Sequence[Pair]) -> list[Pair]:
    """The selection half of a set: its pairs on odd line numbers (1-based, as in the file)."""
    return [p for p in pairs if p.line % 2 == 1]


def held_half(pairs: Sequence[Pair]) -> list[Pair]:
    """The other half: pairs on even line numbers."""
    return [p for p in pairs if p.line % 2 == 0]


@dataclass(frozen=True)
class Covered:
    """The pairs one matrix covers of one set: their line numbers, human scores and cosines."""

    lines: np.ndarray
    human: np.ndarray
    cosine: np.ndarray
    total: int

    @classmethod
    def of(cls, result: SimilarityResult, pairs: Sequence[Pair]) -> Covered:
        """Line numbers re-attached to `result.scores` (its rows are the pairs with no OOV word, in order)."""
        oov = set(result.oov)
        lines = [p.line for p in pairs if p.word1 not in oov and p.word2 not in oov]
        return cls(
            np.asarray(lines, dtype=np.int64),
            result.scores["human"].to_numpy(dtype=np.float64),
            result.scores["cosine"].to_numpy(dtype=np.float64),
            len(pairs),
        )

    def half(self, which: str) -> Covered:
        keep = self.lines % 2 == (1 if which == DEV else 0)
        return Covered(self.lines[keep], self.human[keep], self.cosine[keep], -1)

    def spearman(self) -> float | None:
        if len(self.lines) < MIN_PAIRS:
            return None
        value = float(spearman(self.human, self.cosine))
        return None if np.isnan(value) else value


def spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's ρ along `axis` (vectorized, as scipy.stats.bootstrap calls it): Pearson of the ranks."""
    rx, ry = stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis) / np.sqrt((rx * rx).sum(axis) * (ry * ry).sum(axis))


def interval(data: tuple[np.ndarray, ...], statistic: Any, seed: int) -> tuple[float, float] | None:
    """Seeded percentile bootstrap interval, resampling pairs (paired over every array)."""
    if len(data[0]) < MIN_PAIRS:
        return None
    res = stats.bootstrap(
        data,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return None if np.isnan(low) or np.isnan(high) else (low, high)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def scored(covered: Covered, seed: int) -> dict[str, float | None]:
    """Spearman, its interval and the coverage of one matrix on one set (or half)."""
    ci = interval((covered.human, covered.cosine), spearman, seed)
    return {
        "spearman": _round(covered.spearman()),
        "low": _round(ci[0] if ci else None),
        "high": _round(ci[1] if ci else None),
        "pairs": len(covered.lines),
    } | ({"coverage": round(len(covered.lines) / covered.total, 4)} if covered.total > 0 else {})


def difference(a: Covered, b: Covered, seed: int) -> dict[str, float | None]:
    """ρ(a) − ρ(b) on the pairs both cover, with a paired bootstrap interval."""
    common, ia, ib = np.intersect1d(a.lines, b.lines, return_indices=True)
    both = Covered(common, a.human[ia], a.cosine[ia], -1), Covered(common, b.human[ib], b.cosine[ib], -1)
    rho = [c.spearman() for c in both]
    diff = None if None in rho else rho[0] - rho[1]  # type: ignore[operator]
    ci = interval(
        (both[0].human, both[0].cosine, both[1].cosine),
        lambda h, x, y, axis=-1: spearman(h, x, axis) - spearman(h, y, axis),
        seed,
    )
    return {
        "difference": _round(diff),
        "low": _round(ci[0] if ci else None),
        "high": _round(ci[1] if ci else None),
        "pairs": len(common),
    }


def choose(dev: dict[str, float | None]) -> str | None:
    """The rule: the highest dev-half Spearman; the first such matrix (index order) on a tie."""
    known = [(name, rho) for name, rho in dev.items() if rho is not None]
    return max(known, key=lambda x: x[1])[0] if known else None


def recommend(
    p: EvaluateParams,
    similarity: dict[str, list[Pair]],
    scores: dict[str, MatrixScores],
    records: Sequence[MatrixRecord],
    analogy: Sequence[str] = (),
) -> Selection | None:
    """The recommended matrix and how it was chosen (None without a selection set)."""
    if p.selection_set is None:
        return None
    chosen = benchmark_name(p.selection_set)

    def covered(name: str, bench: str) -> Covered:
        return Covered.of(scores[name].similarity[bench], similarity[bench])

    candidates = [r.name for r in records if r.strategy not in BASELINE_STRATEGIES and r.name in scores]
    dev = {name: covered(name, chosen).half(DEV).spearman() for name in candidates}
    best = choose(dev)
    if best is None:
        return None
    peers = [r.name for r in records if r.strategy in PEER_STRATEGIES and r.name in scores and r.name != best]
    shown = [best, *([TUTORIAL_MATRIX] if TUTORIAL_MATRIX in scores else []), *peers]
    sets: dict[str, dict[str, Covered]] = {}
    for name in shown:
        for bench in similarity:
            whole = covered(name, bench)
            sets.setdefault(bench, {})[name] = whole
            if bench == chosen:
                for which in (DEV, HELD):
                    sets.setdefault(f"{bench}:{which}", {})[name] = whole.half(which)
    against = TUTORIAL_MATRIX in shown and best != TUTORIAL_MATRIX
    return Selection(
        recommended=best,
        rule="highest Spearman on the dev half of the selection set, over the matrices that are not "
        f"baselines ({', '.join(sorted(BASELINE_STRATEGIES))})",
        selection_set=chosen,
        file=p.selection_set,
        half="dev = pairs on odd line numbers",
        seen=[f"{chosen}:{DEV}"],
        partly_seen=[chosen],
        held_out=[f"{chosen}:{HELD}", *(b for b in similarity if b != chosen), *analogy],
        dev={name: _round(rho) for name, rho in dev.items()},
        resamples=RESAMPLES,
        confidence=CONFIDENCE,
        matrices={name: {s: scored(by[name], p.seed) for s, by in sets.items()} for name in shown},
        baseline=TUTORIAL_MATRIX if against else None,
        difference={s: difference(by[best], by[TUTORIAL_MATRIX], p.seed) for s, by in sets.items()}
        if against
        else None,
    )
