"""Writing the stage's files: the data first (from the results), then what is rendered from those files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from embedforge.core.catalog import MatrixRecord
from embedforge.core.files import write_json
from embedforge.evaluate.plots import render_plots, write_plot_data
from embedforge.evaluate.report import render_markdown
from embedforge.evaluate.results import Results, to_metrics


def write_results(results: Results, metrics_dir: str | Path, plots_dir: str | Path) -> None:
    """The metrics JSON documents and the plot tables only the results hold (each file atomically)."""
    for name, document in to_metrics(results).items():
        write_json(Path(metrics_dir) / name, document)
    write_plot_data(results, plots_dir)


def render(
    metrics_dir: str | Path,
    plots_dir: str | Path,
    records: Sequence[MatrixRecord],
    dvclive_dir: str | Path | None = None,
) -> None:
    """report.md, neighbours.md, the by-layer table and the PNGs, from the written files alone."""
    render_markdown(metrics_dir, records)
    render_plots(metrics_dir, plots_dir, records, dvclive_dir)
