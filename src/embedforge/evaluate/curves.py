"""Learning curves: test macro-F1 and accuracy of each consumer as the training set grows.

The training subsets (stratified, nested, seeded) are drawn by `embedforge.core.curves.CurvePlan`, the
same draws the `ceiling` stage fine-tunes the transformer on. The test split is never subsampled.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from embedforge.core.curves import (
    CEILING_SIZES,
    CURVE_SIZES,
    DRAWS,
    FULL,
    RUNS,
    SCORES,
    SD,
    STEPS,
    CurvePlan,
    Summary,
    capped_classes,
    summarise,
)
from embedforge.core.device import CPU
from embedforge.core.metrics import ACCURACY, MACRO_F1
from embedforge.core.params import CurvesParams, EvaluateParams
from embedforge.evaluate.consumers import check_consumers, consumer_scores
from embedforge.evaluate.files import CAPPED, CEILING, MATRICES, TRAIN_ROWS, VARIANTS, MetricsDoc
from embedforge.evaluate.probe import ProbeConfig
from embedforge.nets.data import ProbeData
from embedforge.nets.models import NetConfig
from embedforge.nets.training import one_thread

logger = logging.getLogger(__name__)

Curve = dict[str, dict[str, Summary]]  # series (`cnn_frozen`) -> size key -> summary


def series_name(consumer: str, variant: str) -> str:
    return f"{consumer}_{variant}"


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
    ceiling: dict[str, Summary] = field(default_factory=dict)  # size key -> the fine-tuned transformer's
    capped: dict[str, dict[str, int]] = field(default_factory=dict)  # size key -> {short class: rows}

    def metrics(self) -> dict[str, object]:
        return {
            TRAIN_ROWS: dict(self.train_rows),
            CAPPED: dict(self.capped),
            MATRICES: dict(self.matrices),
            CEILING: dict(self.ceiling),
        }


def checked_ceiling(document: MetricsDoc, plan: CurvePlan) -> dict[str, Summary]:
    """The sizes of metrics/ceiling.json, each checked to be fine-tuned on this plan's very subsets."""
    out: dict[str, Summary] = {}
    for key in document.mapping(CEILING_SIZES):
        where = (CEILING_SIZES, key)
        if key not in plan.runs or key == FULL:
            raise document.error(where, f"a size of {CURVE_SIZES} below the full split; re-run `ceiling`")
        runs = document.number(*where, RUNS)
        if runs is None or not 1 <= runs <= len(plan.runs[key]):
            raise document.error((*where, RUNS), f"1 to {len(plan.runs[key])} (curves.seeds)")
        if document.text(*where, DRAWS) != plan.digest(key, int(runs)):
            raise document.error(
                (*where, DRAWS),
                f"{plan.digest(key, int(runs))}, the digest of the curves' own draws (the data or "
                "curves.seed changed since `ceiling` ran); re-run the ceiling stage",
            )
        summary: Summary = {k: document.number(*where, k) or 0.0 for s in SCORES for k in (s, s + SD)}
        out[key] = {**summary, RUNS: int(runs), STEPS: int(document.number(*where, STEPS) or 0)}
    return out


class CurveRunner:
    """Runs the curve of each matrix whose name `evaluate.curve_matrices` selects; the plan is drawn once."""

    def __init__(
        self,
        p: EvaluateParams,
        names: list[str],
        device: torch.device = CPU,
        draws: CurvesParams | None = None,
    ) -> None:
        self.patterns = list(p.curve_matrices)
        self.cfg = CurveConfig.of(p, device)
        self.draws = draws or CurvesParams()
        self.names = names
        self.plan: CurvePlan | None = None
        self.labels = np.zeros(0, dtype=np.int64)
        self.curves: dict[str, Curve] = {}

    def wants(self, name: str) -> bool:
        return bool(self.cfg.consumers and self.cfg.variants) and selected(name, self.patterns)

    def add(self, name: str, weight: torch.Tensor, train: ProbeData, test: ProbeData) -> None:
        """The curve of one matrix, if its name is selected (every vocabulary has the same train rows)."""
        if not self.wants(name):
            return
        if self.plan is None:
            self.labels = train.labels.numpy()
            self.plan = CurvePlan.of(self.labels, self.draws.sizes, self.draws.seeds, self.draws.seed)
        start = time.perf_counter()
        self.curves[name] = run_curve(weight, train, test, self.names, self.plan, self.cfg)
        logger.info("curve of %s: %.1f s", name, time.perf_counter() - start)

    def results(self, ceiling: MetricsDoc | None, classifier: dict[str, float]) -> CurveResults:
        """The curves, the transformer ceiling (metrics/ceiling.json, and the finetune stage's classifier
        for the full split) and the classes that some sizes capped."""
        if self.plan is None:
            return CurveResults({}, self.curves)
        points = checked_ceiling(ceiling, self.plan) if ceiling is not None else {}
        if FULL in self.plan.runs:  # the whole split: the finetune stage's classifier, one run
            points[FULL] = {
                MACRO_F1: classifier[MACRO_F1],
                MACRO_F1 + SD: 0.0,
                ACCURACY: classifier[ACCURACY],
                ACCURACY + SD: 0.0,
                RUNS: 1,
            }
        capped = {
            key: {self.names[c]: rows for c, rows in short.items()}
            for key, short in capped_classes(self.labels, self.draws.sizes).items()
        }
        return CurveResults(self.plan.rows(), self.curves, points, capped)
