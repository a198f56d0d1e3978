"""`evaluate.max_train_rows` / `max_test_rows`: fewer rows for the probes and learning curves on big data.

The probe of every matrix and the learning curves train on the train split and score on the test split;
on a 62k-row set that is most of the stage. A cap replaces a split by a seeded, stratified sample of at
most that many rows (the same rows for every matrix), drawn once. The fine-tuned classifier is always
scored on the whole test split. A cap that applied is recorded in the metrics (`files.CAPS`), so a number on a
sample is never read as one on the whole split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import EvaluateParams
from embedforge.evaluate.files import SPLITS


def stratified_rows(labels: np.ndarray, cap: int, seed: int) -> np.ndarray | None:
    """Sorted row indices of a seeded sample of `cap` rows, each class in proportion to its share
    (largest remainder); None (every row) when `cap` is 0 or not below the row count."""
    if cap <= 0 or cap >= len(labels):
        return None
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * cap / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: cap - int(take.sum())]:
        take[i] += 1
    rng = np.random.default_rng(seed)
    rows = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(rows))


@dataclass(frozen=True)
class RowCaps:
    """Per split: the rows kept (None = all) and the split's size."""

    rows: dict[str, np.ndarray | None]
    totals: dict[str, int]
    limits: dict[str, int]  # the params' caps (0 = none)

    @classmethod
    def of(cls, p: EvaluateParams, labels: dict[str, np.ndarray]) -> RowCaps:
        """The samples of both splits, seeded by `evaluate.seed` (the test split one further)."""
        limits = {"train": p.max_train_rows, "test": p.max_test_rows}
        classes = len(np.unique(labels["train"]))
        for s, cap in limits.items():
            if 0 < cap < classes:
                raise EmbedforgeError(
                    f"params.yaml: evaluate.max_{s}_rows = {cap} is below the {classes} classes; "
                    f"expected 0 (the whole split) or at least {classes}"
                )
        return cls(
            rows={s: stratified_rows(labels[s], limits[s], p.seed + i) for i, s in enumerate(SPLITS)},
            totals={s: len(labels[s]) for s in SPLITS},
            limits=limits,
        )

    def applied(self) -> bool:
        return any(r is not None for r in self.rows.values())

    def metrics(self) -> dict[str, int] | None:
        """`classification.json`'s `caps` section: per split the cap, the rows used and the split's rows;
        None when no cap applied (the section is left out, so an uncapped run's files are unchanged)."""
        if not self.applied():
            return None
        out: dict[str, int] = {}
        for s in SPLITS:
            rows = self.rows[s]
            out[f"max_{s}_rows"] = self.limits[s]
            out[f"{s}_rows"] = self.totals[s] if rows is None else len(rows)
            out[f"{s}_rows_total"] = self.totals[s]
        return out
