"""Plot data for `dvc plots` and PNG images (matplotlib, Agg) readable without a browser."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

PNG_META = {"Software": None}  # no version string: same data -> same bytes


def _grid(n: int, columns: int, size: tuple[float, float] = (3.0, 2.6)) -> tuple[plt.Figure, list[plt.Axes]]:
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs in a label are not worth a warning per plot
        fig.savefig(path, dpi=72, metadata=PNG_META)
    plt.close(fig)


def scatter_png(frame: pd.DataFrame, bench: str, spearman: dict[str, float | None], path: Path) -> None:
    """Human score vs cosine, one panel per matrix, its Spearman (from the metrics) in each title."""
    matrices = list(dict.fromkeys(frame["matrix"]))
    fig, axes = _grid(len(matrices), 4)
    for ax, name in zip(axes, matrices, strict=True):
        part = frame[frame["matrix"] == name]
        ax.scatter(part["human"], part["cosine"], s=4, alpha=0.5)
        rho = spearman.get(name)
        ax.set_title(f"{name}  ρ={'–' if rho is None else f'{rho:.3f}'}  n={len(part)}", fontsize=8)
        ax.set_xlabel("human", fontsize=7)
        ax.set_ylabel("cosine", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(bench)
    _save(fig, path)


def layers_png(table: pd.DataFrame, path: Path) -> None:
    """Spearman by layer, one panel per benchmark, one line per strategy / source."""
    benches = list(dict.fromkeys(table["benchmark"])) or ["(no layered matrices)"]
    fig, axes = _grid(len(benches), 3, (4.0, 3.0))
    for ax, bench in zip(axes, benches, strict=True):
        part = table[table["benchmark"] == bench]
        for series, rows in part.groupby("series", sort=True):
            ax.plot(rows["layer"], rows["spearman"], marker="o", label=series)
        ax.set_title(bench, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_ylabel("Spearman")
        if len(part):
            ax.legend(fontsize=6)
    _save(fig, path)


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


def probe_png(probe: dict, path: Path) -> None:
    """Probe test accuracy per matrix, frozen and trainable vectors side by side."""
    names = list(probe)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    y = np.arange(len(names))
    for shift, variant in ((-0.2, "frozen"), (0.2, "trainable")):
        ax.barh(y + shift, [probe[n][variant]["accuracy"] for n in names], height=0.4, label=variant)
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    values = [probe[n][v]["accuracy"] for n in names for v in ("frozen", "trainable")]
    ax.set_xlim(max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.02))
    ax.set_xlabel("test accuracy")
    ax.legend(fontsize=7)
    _save(fig, path)


def training_png(dvclive_dir: Path, path: Path) -> bool:
    """Every DVCLive metric series (dvclive/plots/metrics/**.tsv) in one figure; False if there are none."""
    files = sorted((dvclive_dir / "plots" / "metrics").rglob("*.tsv"))
    if not files:
        return False
    fig, axes = _grid(len(files), 3)
    for ax, file in zip(axes, files, strict=True):
        frame = pd.read_csv(file, sep="\t")
        value = [c for c in frame.columns if c not in ("step", "timestamp")][-1]
        ax.plot(frame["step"] if "step" in frame else frame.index, frame[value])
        ax.set_title(str(file.relative_to(dvclive_dir / "plots" / "metrics").with_suffix("")), fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
    _save(fig, path)
    return True
