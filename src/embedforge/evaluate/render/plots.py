"""Plot data for `dvc plots` and PNG images (matplotlib, Agg) readable without a browser.

`render_plots` draws everything from files: the metrics JSON, the embeddings index, and the tables only
the results hold (per-pair cosines, per-text predictions), which `outputs.write_plot_data` wrote first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from embedforge.core.catalog import MatrixRecord  # noqa: E402
from embedforge.core.files import atomic_path, staged  # noqa: E402
from embedforge.core.metrics import ACCURACY, MACRO_F1  # noqa: E402
from embedforge.evaluate.files import (  # noqa: E402
    CLASSIFICATION_FILE,
    CONFUSION,
    CONFUSION_PNG,
    CURVES_CSV,
    CURVES_PNG,
    FINETUNED_KEY,
    LABELS,
    LAYERS_PNG,
    PNG_DIR,
    PROBE_KEY,
    PROBE_PNG,
    SCATTER_DIR,
    SIMILARITY_FILE,
    SPEARMAN_CSV,
    SPEARMAN_PNG,
    STUDENT_FILE,
    STUDENT_PNG,
    TRAINING_PNG,
    VARIANTS,
    MetricsDoc,
    matrix_keys,
    read_docs,
    read_optional,
    scatter_image,
)
from embedforge.evaluate.render.curves import curve_table  # noqa: E402

PNG_META = {"Software": None}  # no version string: same data -> same bytes
# Chinese labels (class names, benchmark names) need CJK glyphs, which matplotlib's DejaVu Sans lacks.
# The bundled subset of Noto Sans CJK SC (GB 2312, SIL OFL 1.1: fonts/OFL.txt) is registered here and
# listed after the default font: matplotlib takes each glyph from the first font of the list that has it.
CJK_FONT = Path(__file__).parents[1] / "fonts" / "NotoSansCJKsc-GB2312.otf"  # in embedforge/evaluate/
font_manager.fontManager.addfont(str(CJK_FONT))
CJK_FAMILY = font_manager.FontProperties(fname=CJK_FONT).get_name()
FONT_FAMILY = ["DejaVu Sans", CJK_FAMILY]
# Sizes in points, at DPI pixels per inch: the smallest text (tick labels) is 8 pt = 11 px.
DPI = 100
STYLE: Any = {  # rcParams (Any: matplotlib types its keys as a Literal)
    "font.family": FONT_FAMILY,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
}
MIN_POINTS = 8  # no text of a PNG is smaller (tests/test_evaluate_stage.py checks every figure)
P = ParamSpec("P")
R = TypeVar("R")


def with_cjk_font(draw: Callable[P, R]) -> Callable[P, R]:
    """Run a drawing function with the Latin + CJK font list and the legible sizes of `STYLE` (text takes
    its font and size when it is created)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _grid(n: int, columns: int, size: tuple[float, float] = (3.6, 3.0)) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure with n subplots in rows of `columns`; unused axes hidden."""
    cols = max(1, min(columns, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig: plt.Figure, path: Path) -> None:
    """Write a PNG and free the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata=PNG_META)
    plt.close(fig)


@with_cjk_font
def scatter_png(frame: pd.DataFrame, bench: str, spearman: dict[str, float | None], path: Path) -> None:
    """Human score vs cosine, one panel per matrix, its Spearman (from the metrics) in each title."""
    matrices = list(dict.fromkeys(frame["matrix"]))
    fig, axes = _grid(len(matrices), 4)
    for ax, name in zip(axes, matrices, strict=True):
        part = frame[frame["matrix"] == name]
        ax.scatter(part["human"], part["cosine"], s=4, alpha=0.5)
        rho = spearman.get(name)
        ax.set_title(f"{name}  ρ={'–' if rho is None else f'{rho:.3f}'}  n={len(part)}", fontsize=9)
        ax.set_xlabel("human")
        ax.set_ylabel("cosine")
    fig.suptitle(bench)
    _save(fig, path)


@with_cjk_font
def layers_png(table: pd.DataFrame, path: Path) -> None:
    """Spearman by layer, one panel per benchmark, one line per strategy / source (`table`: the rows of
    `spearman_table` at one integer layer)."""
    benches = list(dict.fromkeys(table["benchmark"]))
    fig, axes = _grid(len(benches), 3, (4.4, 3.4))
    for ax, bench in zip(axes, benches, strict=True):
        part = table[table["benchmark"] == bench]
        for series, rows in part.groupby("series", sort=True):
            ax.plot(rows["layer"], rows["spearman"], marker="o", label=series)
        ax.set_title(bench)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_ylabel("Spearman")
        ax.legend()
    _save(fig, path)


@with_cjk_font
def spearman_png(table: pd.DataFrame, path: Path) -> None:
    """Every matrix's Spearman, one panel per benchmark, the matrices in the index's order, coloured by
    source (the `spearman_table`)."""
    benches = list(dict.fromkeys(table["benchmark"]))
    names = list(dict.fromkeys(table["matrix"]))
    fig, axes = _grid(len(benches), 3, (4.2, 0.32 * len(names) + 1.4))
    y = {n: i for i, n in enumerate(names)}
    for ax, bench in zip(axes, benches, strict=True):
        part = table[table["benchmark"] == bench]
        for source, rows in part.groupby("source", sort=True, dropna=False):
            label = "—" if pd.isna(source) else str(source)
            ax.scatter(rows["spearman"], [y[m] for m in rows["matrix"]], s=30, label=label, zorder=3)
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(bench)
        ax.set_xlabel("Spearman")
        ax.legend(title="source")
    _save(fig, path)


@with_cjk_font
def confusion_png(counts: np.ndarray, names: list[str], path: Path) -> None:
    """The confusion matrix as an annotated heat map."""
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.2 * len(names) + 1.5))
    ax.imshow(counts, cmap="Blues")
    for (i, j), value in np.ndenumerate(counts):
        ax.text(j, i, str(value), ha="center", va="center", color="black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("fine-tuned classifier, test split")
    _save(fig, path)


@with_cjk_font
def probe_png(accuracy: dict[str, dict[str, float]], path: Path) -> None:
    """Probe test accuracy per matrix (matrix -> variant -> accuracy), frozen and trainable side by side."""
    names = list(accuracy)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    y = np.arange(len(names))
    for shift, variant in zip((-0.2, 0.2), VARIANTS, strict=True):
        ax.barh(y + shift, [accuracy[n][variant] for n in names], height=0.4, label=variant)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    values = [accuracy[n][v] for n in names for v in VARIANTS]
    ax.set_xlim(max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.02))
    ax.set_xlabel("test accuracy")
    ax.legend()
    _save(fig, path)


@with_cjk_font
def training_png(dvclive_dir: Path, path: Path) -> bool:
    """Every DVCLive metric series (dvclive/plots/metrics/**.tsv) in one figure; False if there are none."""
    files = sorted((dvclive_dir / "plots" / "metrics").rglob("*.tsv"))
    if not files:
        return False
    fig, axes = _grid(len(files), 3)
    for ax, file in zip(axes, files, strict=True):
        frame = pd.read_csv(file, sep="\t")
        value = [c for c in frame.columns if c not in ("step", "timestamp")][-1]
        # points and a line: a short run's few logged steps stay visible
        ax.plot(frame["step"] if "step" in frame else frame.index, frame[value], marker="o", markersize=3)
        ax.set_title(str(file.relative_to(dvclive_dir / "plots" / "metrics").with_suffix("")))
        ax.set_xlabel("step")
    _save(fig, path)
    return True


def _layer_text(layer: object) -> str:
    """A record's layer as a label: 4, 3-4 (a list: their average), or empty (no layer)."""
    if isinstance(layer, list):
        return "-".join(str(x) for x in layer)
    return "" if layer is None else str(layer)


SPEARMAN_COLUMNS = ["matrix", "strategy", "source", "layer", "layers", "benchmark", "spearman", "series"]


def spearman_table(records: Sequence[MatrixRecord], similarity: MetricsDoc) -> pd.DataFrame:
    """Spearman per (matrix, benchmark), the matrices in the index's order: `layer` is the one integer
    layer (else empty), `layers` its label, `series` strategy / source (the by-layer lines)."""
    rows = []
    for r in records:
        one_layer = isinstance(r.layer, int) and not isinstance(r.layer, bool)
        for bench in similarity.mapping(r.name):
            if not similarity.has(r.name, bench, "spearman"):
                continue
            rho = similarity.number(r.name, bench, "spearman")
            if rho is not None and not math.isnan(rho):
                rows.append(
                    {
                        "matrix": r.name,
                        "strategy": r.strategy,
                        "source": r.source,
                        "layer": r.layer if one_layer else None,
                        "layers": _layer_text(r.layer),
                        "benchmark": bench,
                        "spearman": rho,
                        "series": f"{r.strategy} / {r.source}",
                    }
                )
    table = pd.DataFrame(rows, columns=SPEARMAN_COLUMNS)
    return table.astype({"layer": "Int64"})


def by_layer(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of `spearman_table` on a by-layer line: one integer layer, in series with two or more
    layers (empty when every strategy / source has one layer, as in the default run)."""
    part = table[table["layer"].notna()]
    layers = part.groupby(["series", "benchmark"])["layer"].transform("nunique")
    return part[layers >= 2].sort_values(["series", "benchmark", "layer"], kind="stable")


def _probe_accuracy(
    classification: MetricsDoc, records: Sequence[MatrixRecord]
) -> dict[str, dict[str, float]]:
    """matrix -> variant -> probe accuracy: the index's matrices first, then the baselines."""
    probe = classification.mapping(PROBE_KEY)
    names = [r.name for r in records if r.name in probe]
    names += sorted(set(probe) - set(names))
    accuracy = {}
    for n in names:
        values = [classification.number(PROBE_KEY, n, v, ACCURACY) for v in VARIANTS]
        known = [x for x in values if x is not None]
        if len(known) == len(VARIANTS):  # a bar needs both variants
            accuracy[n] = dict(zip(VARIANTS, known, strict=True))
    return accuracy


@with_cjk_font
def curves_png(table: pd.DataFrame, path: Path) -> None:
    """Test macro-F1 against training texts (log scale), one panel per consumer, one line per matrix."""
    series = list(dict.fromkeys(table["series"])) or ["(no curves)"]
    fig, axes = _grid(len(series), 2, (5.2, 3.8))
    for ax, name in zip(axes, series, strict=True):
        part = table[table["series"] == name]
        for matrix, rows in part.groupby("matrix", sort=False):
            rows = rows.sort_values("train_rows")
            ax.errorbar(
                rows["train_rows"],
                rows[MACRO_F1],
                yerr=rows[MACRO_F1 + "_sd"],
                marker="o",
                capsize=3,
                label=str(matrix),
            )
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("training texts")
        ax.set_ylabel("test macro-F1")
        if len(part):
            ax.legend()
    _save(fig, path)


@with_cjk_font
def student_png(student: MetricsDoc, path: Path) -> None:
    """Speed against quality: the shipped student and the transformer, texts/s on a log axis."""
    fig, (ax,) = _grid(1, 1, (4.5, 3.2))
    for key, label, marker in (("transformer", "fine-tuned transformer", "s"), ("student", "student", "o")):
        speed, f1 = student.number(key, "texts_per_s"), student.number(key, MACRO_F1)
        if speed and f1 is not None:
            ax.scatter([speed], [f1], marker=marker, s=40, label=label)
            ax.annotate(
                f"{speed:,.0f}/s, {f1:.3f}",
                (speed, f1),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
    ax.set_xscale("log")
    ax.set_xlabel("texts per second, raw text in (log)")
    ax.set_ylabel("test macro-F1")
    ax.legend()
    _save(fig, path)


def render_plots(
    metrics_dir: str | Path,
    plots_dir: str | Path,
    records: Sequence[MatrixRecord],
    dvclive_dir: str | Path | None = None,
) -> None:
    """spearman.csv, curves.csv and png/ from the metrics, plot tables and DVCLive's curves."""
    plots_dir = Path(plots_dir)
    similarity, classification = read_docs(metrics_dir, SIMILARITY_FILE, CLASSIFICATION_FILE)
    spearman = spearman_table(records, similarity)
    with atomic_path(plots_dir / SPEARMAN_CSV) as tmp:
        spearman.to_csv(tmp, index=False)
    layers = by_layer(spearman)
    curves = curve_table(classification)
    with atomic_path(plots_dir / CURVES_CSV) as tmp:
        curves.to_csv(tmp, index=False)
    with atomic_path(plots_dir / PNG_DIR, is_dir=True) as tmp:
        if len(curves):
            curves_png(curves, tmp / CURVES_PNG)
        for csv in sorted(staged(plots_dir / SCATTER_DIR).glob("*.csv")):
            bench = csv.stem
            rho = {
                m: similarity.number(m, bench, "spearman")
                for m in matrix_keys(similarity)
                if similarity.has(m, bench)
            }
            scatter_png(pd.read_csv(csv), bench, rho, tmp / scatter_image(bench))
        if len(spearman):
            spearman_png(spearman, tmp / SPEARMAN_PNG)
        if len(layers):  # a chart only where some strategy / source has two layers or more
            layers_png(layers, tmp / LAYERS_PNG)
        labels = classification.strings(FINETUNED_KEY, LABELS)
        counts = classification.counts(FINETUNED_KEY, CONFUSION)
        if labels is not None and counts is not None:
            confusion_png(np.asarray(counts, dtype=np.int64), labels, tmp / CONFUSION_PNG)
        accuracy = _probe_accuracy(classification, records)
        if accuracy:
            probe_png(accuracy, tmp / PROBE_PNG)
        if dvclive_dir is not None:
            training_png(Path(dvclive_dir), tmp / TRAINING_PNG)
        if student := read_optional(metrics_dir, STUDENT_FILE):
            student_png(student, tmp / STUDENT_PNG)
