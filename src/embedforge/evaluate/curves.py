"""Learning curves: test macro-F1 and accuracy of each consumer as the training set grows.

Training sets are stratified and nested: for each seed the rows of each class are put in a seeded order,
and the subset of `n` per class is the first `n` of each class, so the 50 lie inside the 200, which lie
inside the 1000. Sizes below the full split run once per seed (mean ± sample sd); the full split runs once.
The test split is never subsampled.
"""

from __future__ import annotations

import fnmatch
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from embedforge.core.device import CPU
from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import ACCURACY, MACRO_F1
from embedforge.core.params import EvaluateParams
from embedforge.evaluate.consumers import NetConfig, check_consumers, consumer_scores
from embedforge.evaluate.probe import VARIANTS, ProbeConfig, ProbeData
from embedforge.evaluate.training import one_thread

logger = logging.getLogger(__name__)

CURVES = "curves"  # the section of metrics/classification.json
FULL = "full"  # the size key of the whole training split (`curve_sizes` entry 0)
DIGITS = 4  # rounding of the numbers in metrics/classification.json
RUNS = "runs"
SD = "_sd"  # suffix of a standard deviation key: macro_f1_sd, accuracy_sd
SCORES = (MACRO_F1, ACCURACY)

Summary = dict[str, float | int]  # macro_f1, macro_f1_sd, accuracy, accuracy_sd, runs
Curve = dict[str, dict[str, Summary]]  # series (`cnn_frozen`) -> size key -> summary


def size_key(n: int) -> str:
    """`50` -> "50"; 0 (the full split) -> "full"."""
    return FULL if n == 0 else str(n)


def series_name(consumer: str, variant: str) -> str:
    return f"{consumer}_{variant}"


def nested_subsets(labels: np.ndarray, sizes: Sequence[int], seed: int) -> dict[str, np.ndarray]:
    """Sorted row indices per size key: the first `n` rows of each class in a seeded order (nested)."""
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    out = {}
    for n in sorted(set(sizes), key=lambda n: (n == 0, n)):
        rows = np.arange(len(labels)) if n == 0 else np.concatenate([o[:n] for o in orders])
        out[size_key(n)] = np.sort(rows)
    return out


@dataclass(frozen=True)
class CurvePlan:
    """The training subsets of every curve: size key -> one row-index array per run."""

    runs: dict[str, list[np.ndarray]]

    @classmethod
    def of(cls, labels: np.ndarray, sizes: Sequence[int], seeds: int, seed: int) -> CurvePlan:
        """`seeds` nested draws for the sizes below the full split; one run of the full split."""
        bad = [n for n in sizes if n < 0]
        if bad or not sizes:
            raise EmbedforgeError(
                f"params.yaml: evaluate.curve_sizes = {list(sizes)}; expected a non-empty list of examples "
                "per class >= 0 (0 = the whole train split)"
            )
        draws = [nested_subsets(labels, sizes, seed + s) for s in range(seeds)]
        return cls({k: [d[k] for d in draws] if k != FULL else [draws[0][k]] for k in draws[0]})

    def rows(self) -> dict[str, int]:
        """Training rows per size key (what `50 per class` came to)."""
        return {k: len(runs[0]) for k, runs in self.runs.items()}


@dataclass(frozen=True)
class CurveConfig:
    """Which consumers run, and how they train."""

    consumers: list[str]
    variants: list[str]
    train: ProbeConfig
    net: NetConfig = field(default_factory=NetConfig)

    @classmethod
    def of(cls, p: EvaluateParams, device: torch.device = CPU) -> CurveConfig:
        return cls(
            consumers=check_consumers(p.curve_consumers),
            variants=[v for v in VARIANTS if v in p.curve_variants],
            train=ProbeConfig(
                epochs=p.curve_epochs,
                batch_size=p.curve_batch_size,
                lr=p.curve_lr,
                seed=p.seed,
                min_steps=p.curve_min_steps,
                device=device,
            ),
            net=NetConfig(filters=p.cnn_filters, hidden=p.lstm_hidden, dropout=p.curve_dropout),
        )


def summarise(runs: Sequence[dict[str, float]]) -> Summary:
    """Mean and sample standard deviation (0 for one run) of each score, rounded, and the run count."""
    out: Summary = {}
    for key in SCORES:
        values = [r[key] for r in runs]
        out[key] = round(statistics.fmean(values), DIGITS)
        out[key + SD] = round(statistics.stdev(values), DIGITS) if len(values) > 1 else 0.0
    out[RUNS] = len(runs)
    return out


def run_curve(
    weight: torch.Tensor,
    train: ProbeData,
    test: ProbeData,
    names: list[str],
    plan: CurvePlan,
    cfg: CurveConfig,
) -> Curve:
    """Every consumer × variant at every size of the plan, on one matrix."""
    curve: Curve = {}
    with one_thread():
        for consumer in cfg.consumers:
            for variant in cfg.variants:
                start = time.perf_counter()
                curve[series_name(consumer, variant)] = {
                    key: summarise(
                        [
                            consumer_scores(
                                consumer,
                                weight,
                                train.subset(rows),
                                test,
                                names,
                                variant == "trainable",
                                replace(cfg.train, seed=cfg.train.seed + i),  # run i: its own init
                                cfg.net,
                            )
                            for i, rows in enumerate(runs)
                        ]
                    )
                    for key, runs in plan.runs.items()
                }
                logger.info("curve %s %s: %.1f s", consumer, variant, time.perf_counter() - start)
    return curve


def selected(name: str, patterns: Sequence[str]) -> bool:
    """Whether a matrix (or baseline) name matches one of the `evaluate.curve_matrices` patterns."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class CurveResults:
    """The `curves` section of metrics/classification.json."""

    train_rows: dict[str, int]  # size key -> training rows
    matrices: dict[str, Curve]  # matrix or baseline name -> its curve

    def metrics(self) -> dict[str, object]:
        return {"train_rows": dict(self.train_rows), "matrices": dict(self.matrices)}


class CurveRunner:
    """Runs the curve of each matrix whose name `evaluate.curve_matrices` selects; the plan is drawn once."""

    def __init__(self, p: EvaluateParams, names: list[str], device: torch.device = CPU) -> None:
        self.patterns = list(p.curve_matrices)
        self.cfg = CurveConfig.of(p, device)
        self.p = p
        self.names = names
        self.plan: CurvePlan | None = None
        self.curves: dict[str, Curve] = {}

    def wants(self, name: str) -> bool:
        return bool(self.cfg.consumers and self.cfg.variants) and selected(name, self.patterns)

    def add(self, name: str, weight: torch.Tensor, train: ProbeData, test: ProbeData) -> None:
        """The curve of one matrix, if its name is selected (every vocabulary has the same train rows)."""
        if not self.wants(name):
            return
        if self.plan is None:
            self.plan = CurvePlan.of(
                train.labels.numpy(), self.p.curve_sizes, self.p.curve_seeds, self.p.seed
            )
        start = time.perf_counter()
        self.curves[name] = run_curve(weight, train, test, self.names, self.plan, self.cfg)
        logger.info("curve of %s: %.1f s", name, time.perf_counter() - start)

    def results(self) -> CurveResults:
        return CurveResults(self.plan.rows() if self.plan else {}, self.curves)
