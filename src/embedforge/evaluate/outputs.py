"""Writing the stage's files: the data first (from the results), then what is rendered from those files."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

import pandas as pd

from embedforge.core.catalog import TUTORIAL_MATRIX, MatrixRecord
from embedforge.core.files import atomic_path, write_json
from embedforge.core.metrics import ACCURACY, MACRO_F1
from embedforge.evaluate.files import (
    BY_MATRIX_FILE,
    CAPS,
    CLASSIFICATION_FILE,
    CONFUSION_CSV,
    FINETUNED_KEY,
    HEADLINE_FILE,
    PROBE_KEY,
    RECOMMENDED_KEY,
    SCATTER_DIR,
    SIMILARITY_FILE,
    SPLITS,
    STUDENT_FILE,
    MetricsDoc,
    matrix_keys,
    read_optional,
)
from embedforge.evaluate.render.curves import curve_points
from embedforge.evaluate.render.plots import render_plots
from embedforge.evaluate.render.report import render_markdown
from embedforge.evaluate.render.targets import Targets
from embedforge.evaluate.results import Results, to_metrics

__all__ = ["HEADLINE_FILE", "by_matrix", "headline", "render", "write_plot_data", "write_results"]


def headline(documents: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers a person compares across experiments (metrics/headline.json, the DVC metrics).

    Read from the metrics documents (`to_metrics`, or the files): similarity: the mean Spearman over the
    similarity sets of the matrix best on that mean; analogy: the best accuracy per analogy set, averaged;
    classifier: the fine-tuned classifier's test macro-F1 (classifier_accuracy beside it); probe /
    probe_random: the best frozen-probe macro-F1 and the random baseline's; best.<benchmark>: the best
    matrix's score; cls_finetuned.<benchmark>: the tutorial matrix's; recommended.<benchmark>: the
    recommended matrix's (see evaluate.selection).
    """
    # per matrix, each benchmark's one number: Spearman for a similarity set, accuracy for an analogy set
    matrices = {k: documents[SIMILARITY_FILE][k] for k in matrix_keys(documents[SIMILARITY_FILE])}
    per_matrix = {
        name: {b: r.get("spearman", r.get(ACCURACY)) for b, r in benchmarks.items()}
        for name, benchmarks in matrices.items()
        if isinstance(benchmarks, dict)
    }
    first: dict[str, Any] = next(iter(matrices.values()), {})
    sims = [b for b, r in first.items() if "spearman" in r]
    out: dict[str, Any] = {}
    means = [
        fmean(values[b] for b in sims)
        for values in per_matrix.values()
        if sims and all(values[b] is not None for b in sims)
    ]
    if means:
        out["similarity"] = round(max(means), 4)
    best: dict[str, float] = {}
    for values in per_matrix.values():
        for bench, v in values.items():
            if v is not None and v > best.get(bench, -math.inf):
                best[bench] = v
    if analogies := [v for b, v in best.items() if b not in sims]:
        out["analogy"] = round(fmean(analogies), 4)
    classification = documents[CLASSIFICATION_FILE]
    out["classifier"] = classification[FINETUNED_KEY][MACRO_F1]
    out["classifier_accuracy"] = classification[FINETUNED_KEY][ACCURACY]
    frozen = {name: p["frozen"][MACRO_F1] for name, p in classification[PROBE_KEY].items()}
    if trained := [v for name, v in frozen.items() if name in per_matrix]:
        out["probe"] = max(trained)
    if baseline := [v for name, v in frozen.items() if name not in per_matrix]:
        out["probe_random"] = baseline[0]
    out["best"] = best
    if caps := classification.get(CAPS):  # probes and curves on samples: say so beside their numbers
        out[CAPS] = {f"{s}_rows": caps[f"{s}_rows"] for s in SPLITS}
    if TUTORIAL_MATRIX in per_matrix:
        out[TUTORIAL_MATRIX] = {b: v for b, v in per_matrix[TUTORIAL_MATRIX].items() if v is not None}
    if (chosen := documents[SIMILARITY_FILE].get(RECOMMENDED_KEY)) in per_matrix:
        out[RECOMMENDED_KEY] = {b: v for b, v in per_matrix[chosen].items() if v is not None}
    if student := documents.get(STUDENT_FILE):  # the `student` stage's: the shipped small model
        out["student_macro_f1"] = student["student"][MACRO_F1]
        out["student_speedup"] = round(student["speedup"], 1)  # a timing: it moves from run to run
    return out


def by_matrix(classification: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """metrics/by_matrix.json: per matrix, the frozen probe's test macro-F1 and each learning curve's mean
    test macro-F1 per size, so `dvc metrics diff` shows the numbers a person compares matrix by matrix."""
    out: dict[str, dict[str, Any]] = {
        name: {"probe": probe["frozen"][MACRO_F1]} for name, probe in classification[PROBE_KEY].items()
    }
    for matrix, series in curve_points(MetricsDoc.of(classification, CLASSIFICATION_FILE)).items():
        for name, sizes in series.items():
            out.setdefault(matrix, {})[name] = {size: point[0] for size, point in sizes.items()}
    return out


def write_plot_data(results: Results, plots_dir: str | Path) -> None:
    """The plot tables only the results hold: scatter/<benchmark>.csv and confusion.csv."""
    plots_dir = Path(plots_dir)
    with atomic_path(plots_dir / SCATTER_DIR, is_dir=True) as tmp:
        benches = dict.fromkeys(b for s in results.scores.values() for b in s.similarity)
        for bench in benches:
            frames = [s.similarity[bench].scores.assign(matrix=name) for name, s in results.scores.items()]
            pd.concat(frames)[["matrix", "word1", "word2", "human", "cosine"]].to_csv(
                tmp / f"{bench}.csv", index=False
            )
    with atomic_path(plots_dir / CONFUSION_CSV) as tmp:
        results.classifier.predictions().to_csv(tmp, index=False)


def write_results(results: Results, metrics_dir: str | Path, plots_dir: str | Path) -> None:
    """The metrics JSON documents and the plot tables only the results hold (each file atomically); the
    headline also reads the `student` stage's document when the metrics folder has one."""
    documents: dict[str, Any] = to_metrics(results)
    for name, document in documents.items():
        write_json(Path(metrics_dir) / name, document)
    if student := read_optional(metrics_dir, STUDENT_FILE):
        documents[STUDENT_FILE] = student.data
    write_json(Path(metrics_dir) / HEADLINE_FILE, headline(documents))
    write_json(Path(metrics_dir) / BY_MATRIX_FILE, by_matrix(documents[CLASSIFICATION_FILE]))
    write_plot_data(results, plots_dir)


def render(
    metrics_dir: str | Path,
    plots_dir: str | Path,
    records: Sequence[MatrixRecord],
    dvclive_dir: str | Path | None = None,
    targets: Targets | None = None,
) -> None:
    """report.md, neighbours.md, the by-layer table and the PNGs, from the written files alone (and the
    project's targets that apply to this run, for the report)."""
    render_markdown(metrics_dir, records, targets)
    render_plots(metrics_dir, plots_dir, records, dvclive_dir)
