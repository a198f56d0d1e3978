"""The training subsets of the learning curves and their summaries, shared by `evaluate` and `ceiling`.

Training sets are stratified and nested: for each seed the rows of each class are put in a seeded order,
and the subset of `n` per class is the first `n` of each class, so the 50 lie inside the 200, which lie
inside the 1000. A class with fewer than `n` training rows gives all of them (it is "capped" at that
size). Sizes below the full split run once per seed (mean ± sample sd); the full split runs once.
Both stages draw through `CurvePlan.of` with the same labels and seed, so they train on the same rows;
`CurvePlan.digest` lets one check it from the files.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import ACCURACY, MACRO_F1

FULL = "full"  # the size key of the whole training split (`curves.sizes` entry 0)
DIGITS = 4  # rounding of the summaries in the metrics files
RUNS = "runs"
SD = "_sd"  # suffix of a standard deviation key: macro_f1_sd, accuracy_sd
SCORES = (MACRO_F1, ACCURACY)
CURVE_SIZES = "curves.sizes"
# metrics/ceiling.json (the `ceiling` stage): {"sizes": {<size key>: {<Summary>, train_rows, steps, draws}}}
CEILING_SIZES, TRAIN_ROWS, STEPS, DRAWS = "sizes", "train_rows", "steps", "draws"

Summary = dict[str, float | int]  # macro_f1, macro_f1_sd, accuracy, accuracy_sd, runs


def size_key(n: int) -> str:
    """`50` -> "50"; 0 (the full split) -> "full"."""
    return FULL if n == 0 else str(n)


def nested_subsets(labels: np.ndarray, sizes: Sequence[int], seed: int) -> dict[str, np.ndarray]:
    """Sorted row indices per size key: the first `n` rows of each class in a seeded order (nested)."""
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    out = {}
    for n in sorted(set(sizes), key=lambda n: (n == 0, n)):
        rows = np.arange(len(labels)) if n == 0 else np.concatenate([o[:n] for o in orders])
        out[size_key(n)] = np.sort(rows)
    return out


def capped_classes(labels: np.ndarray, sizes: Sequence[int]) -> dict[str, dict[int, int]]:
    """size key -> {class id: its training rows} for the classes with fewer rows than that size."""
    ids, counts = np.unique(labels, return_counts=True)
    out = {}
    for n in sorted({n for n in sizes if n > 0}):
        short = {int(c): int(k) for c, k in zip(ids, counts, strict=True) if k < n}
        if short:
            out[size_key(n)] = short
    return out


@dataclass(frozen=True)
class CurvePlan:
    """The training subsets of every curve: size key -> one row-index array per run."""

    runs: dict[str, list[np.ndarray]]

    @classmethod
    def of(
        cls, labels: np.ndarray, sizes: Sequence[int], seeds: int, seed: int, key: str = CURVE_SIZES
    ) -> CurvePlan:
        """`seeds` nested draws (seeds `seed`, `seed + 1`, ...) for the sizes below the full split; one run
        of the full split. `key` names the parameter in errors."""
        bad = [n for n in sizes if n < 0]
        if bad or not sizes:
            raise EmbedforgeError(
                f"params.yaml: {key} = {list(sizes)}; expected a non-empty list of examples "
                "per class >= 0 (0 = the whole train split)"
            )
        draws = [nested_subsets(labels, sizes, seed + s) for s in range(seeds)]
        return cls({k: [d[k] for d in draws] if k != FULL else [draws[0][k]] for k in draws[0]})

    def rows(self) -> dict[str, int]:
        """Training rows per size key (what `50 per class` came to)."""
        return {k: len(runs[0]) for k, runs in self.runs.items()}

    def digest(self, key: str, runs: int | None = None) -> str:
        """A short hash of the row indices of the first `runs` runs (default all) of one size: equal
        digests, equal subsets."""
        h = hashlib.sha256()
        for rows in self.runs[key][:runs]:
            h.update(np.asarray(rows, dtype=np.int64).tobytes() + b"|")
        return h.hexdigest()[:16]


def summarise(runs: Sequence[dict[str, float]]) -> Summary:
    """Mean and sample standard deviation (0 for one run) of each score, rounded, and the run count."""
    out: Summary = {}
    for key in SCORES:
        values = [r[key] for r in runs]
        out[key] = round(statistics.fmean(values), DIGITS)
        out[key + SD] = round(statistics.stdev(values), DIGITS) if len(values) > 1 else 0.0
    out[RUNS] = len(runs)
    return out
