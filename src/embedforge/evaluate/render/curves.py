"""The opening of report.md and the learning-curve plot data, from the `curves` section of the metrics.

"Should I use this matrix, and from which encoder?": one row per matrix and baseline, one column per
training size, each cell the mean ± sd test macro-F1 of the best consumer there; the fine-tuned
transformer is the ceiling (`curves.ceiling`: the `ceiling` stage's fine-tuning on the same subsets, and the
`finetune` stage's classifier for the full split). Then the project's targets for the curves, where
they apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from embedforge.core.catalog import RANDOM_BASELINE, MatrixRecord, Source, Strategy
from embedforge.core.curves import FULL, RUNS, SD
from embedforge.core.metrics import ACCURACY, MACRO_F1
from embedforge.evaluate.files import (
    CAPPED,
    CEILING,
    CEILING_ROW,
    CURVES,
    CURVES_PNG,
    FINETUNED_KEY,
    MATRICES,
    PNG_DIR,
    TRAIN_ROWS,
    MetricsDoc,
)
from embedforge.evaluate.render.markdown import table
from embedforge.evaluate.render.targets import Targets, verdict

CAPPED_MARK = "†"
LEAK_MARK = "‡"  # a matrix of the fine-tuned encoder: the encoder saw every training label
NOT_RUN = "not run (`ceiling.max_size`)"  # a ceiling cell above the sizes the `ceiling` stage ran

Point = tuple[float, float, int]  # mean, sd, runs


def curve_points(
    classification: MetricsDoc, metric: str = MACRO_F1
) -> dict[str, dict[str, dict[str, Point]]]:
    """matrix -> series -> size key -> (mean, sd, runs), for the entries that have all three."""
    out: dict[str, dict[str, dict[str, Point]]] = {}
    for matrix, series in classification.mapping(CURVES, MATRICES).items():
        for name, sizes in (series or {}).items():
            for size in sizes or {}:
                keys = (CURVES, MATRICES, matrix, name, size)
                mean, sd, runs = (classification.number(*keys, k) for k in (metric, metric + SD, RUNS))
                if mean is not None and sd is not None and runs is not None:
                    out.setdefault(matrix, {}).setdefault(name, {})[size] = (mean, sd, int(runs))
    return out


def ceiling_points(classification: MetricsDoc, metric: str = MACRO_F1) -> dict[str, Point]:
    """size key -> (mean, sd, runs) of the fine-tuned transformer; an older run's files: the full split from
    `finetuned` alone."""
    if not classification.has(CURVES, CEILING):
        has = classification.has(FINETUNED_KEY, metric)
        f1 = classification.number(FINETUNED_KEY, metric) if has else None
        return {} if f1 is None else {FULL: (f1, 0.0, 1)}
    out = {}
    for size in classification.mapping(CURVES, CEILING):
        keys = (CURVES, CEILING, size)
        mean, sd, runs = (classification.number(*keys, k) for k in (metric, metric + SD, RUNS))
        if mean is not None and sd is not None and runs is not None:
            out[size] = (mean, sd, int(runs))
    return out


def capped(classification: MetricsDoc) -> dict[str, dict[str, int]]:
    """size key -> {class: training rows} for the classes with fewer training rows than that size."""
    if not classification.has(CURVES, CAPPED):  # an older run's file
        return {}
    return {k: dict(v) for k, v in classification.mapping(CURVES, CAPPED).items() if isinstance(v, dict)}


def size_keys(classification: MetricsDoc) -> list[str]:
    """The training sizes in order (numbers ascending, then `full`)."""
    keys = list(classification.mapping(CURVES, TRAIN_ROWS))
    return sorted(keys, key=lambda k: (k == FULL, int(k) if k.isdigit() else 0))


def _order(points: Mapping[str, object], records: Sequence[MatrixRecord]) -> list[str]:
    """Index matrices in extraction order, then the baselines (random) by name."""
    names = [r.name for r in records if r.name in points]
    return names + sorted(set(points) - set(names))


def _best(
    series: dict[str, dict[str, Point]], size: str, among: Sequence[str] | None = None
) -> tuple[str, Point] | None:
    cands = [(s, p[size]) for s, p in series.items() if size in p and (among is None or s in among)]
    return max(cands, key=lambda c: c[1][0]) if cands else None


def _label(name: str, records: Sequence[MatrixRecord], labelled: int) -> str:
    """The row label: the name, and what it is (a fine-tuned encoder's matrix says what its encoder saw)."""
    record = next((r for r in records if r.name == name), None)
    if record is None:
        return f"{name} (baseline)"
    if record.strategy == Strategy.WORD2VEC:
        return f"{name} (baseline, same corpus)"
    if record.source == Source.FINETUNED:
        return f"{name} ({LEAK_MARK} encoder saw {labelled:,} labels)"
    return f"{name} ({record.source} encoder)" if record.source else name


def _cell(point: Point, consumer: str | None = None) -> str:
    """mean ± sd over the runs, or the one run's score said as such (never a `± 0.000`); the consumer that
    scored it in brackets."""
    mean, sd, runs = point
    notes = ", ".join(n for n in (consumer, "1 run" if runs == 1 else None) if n)
    return (f"{mean:.3f}" if runs == 1 else f"{mean:.3f} ± {sd:.3f}") + (f" ({notes})" if notes else "")


def _headline(classification: MetricsDoc, records: Sequence[MatrixRecord]) -> list[str]:
    points = curve_points(classification)
    sizes = size_keys(classification)
    rows = classification.mapping(CURVES, TRAIN_ROWS)
    short = capped(classification)
    head = [
        f"{k} / class{CAPPED_MARK if k in short else ''}" if k != FULL else f"full split ({rows[k]})"
        for k in sizes
    ]
    body = []
    labelled = int(rows.get(FULL, 0))
    finetuned = {r.name for r in records if r.source == Source.FINETUNED}
    order = _order(points, records)
    # the rows whose consumer saw only the labels of its subset first, then the fine-tuned encoders'
    for name in [n for n in order if n not in finetuned] + [n for n in order if n in finetuned]:
        cells = []
        for size in sizes:
            best = _best(points[name], size)
            cells.append("–" if best is None else _cell(best[1], best[0]))
        body.append([_label(name, records, labelled), *cells])
    ceiling = ceiling_points(classification)
    if ceiling:
        cells = [NOT_RUN if k not in ceiling else _cell(ceiling[k]) for k in sizes]
        body.append([CEILING_ROW, *cells])
    lines = table(["matrix", *head], body)
    if finetuned & set(points):
        lines += [
            "",
            f"{LEAK_MARK} The encoder behind these matrices was fine-tuned on all {labelled:,} labelled "
            "training texts: below the full split their consumers gain from labels they were not given. "
            "Compare them with the transformer row; the rows above them saw only their subset's labels.",
        ]
    if short:
        notes = [f"{k} / class: " + ", ".join(f"{c} ({n})" for c, n in short[k].items()) for k in short]
        lines += [
            "",
            f"{CAPPED_MARK} Classes with fewer training texts give all of theirs: {'; '.join(notes)}.",
        ]
    return lines


def _targets(classification: MetricsDoc, records: Sequence[MatrixRecord], targets: Targets) -> list[str]:
    """The project's curve targets at the sizes this run drew: the best extracted matrix's margins over
    the baselines (best of `curves.consumers`), and each fine-tuned encoder's matrix against the base's."""
    points = curve_points(classification)
    by_name = {r.name: r for r in records}
    extracted = [n for n in points if n in by_name and by_name[n].source]
    w2v = [n for n in points if n in by_name and by_name[n].strategy == Strategy.WORD2VEC]
    random = [n for n in points if n not in by_name]
    sizes = size_keys(classification)
    goal = targets.curves
    nets = "/".join(goal.consumers)
    lines = []

    def best_of(names: list[str], size: str) -> tuple[str, float] | None:
        found = [(n, b[1][0]) for n in names if (b := _best(points[n], size, goal.consumers))]
        return max(found, key=lambda f: f[1]) if found else None

    for size in sizes:
        top = best_of(extracted, size)
        margins = ((RANDOM_BASELINE, random, goal.over_random), (Strategy.WORD2VEC, w2v, goal.over_word2vec))
        for label, names, by_size in margins:
            other = best_of(names, size)
            if top is None or other is None or size not in by_size:
                continue
            gap = top[1] - other[1]
            lines.append(
                f"- {size} / class, {nets}: best extracted {top[1]:.3f} ({top[0]}) vs {label} "
                f"{other[1]:.3f}: {gap:+.3f}; the project's target ≥ +{by_size[size]:.2f}, "
                f"{verdict(gap, by_size[size])}."
            )
    for r in records:
        base = next(
            (
                b
                for b in records
                if b.source == Source.BASE
                and r.source == Source.FINETUNED
                and b.strategy == r.strategy
                and b.layer == r.layer
                and b.name in points
            ),
            None,
        )
        if base is None or r.name not in points:
            continue
        for size in (s for s in sizes if s in goal.finetuned_ahead):
            tuned, plain = _best(points[r.name], size), _best(points[base.name], size)
            if tuned and plain:
                gap = tuned[1][0] - plain[1][0]
                lines.append(
                    f"- {size} / class: {r.name} {tuned[1][0]:.3f} vs {base.name} {plain[1][0]:.3f}: "
                    f"{gap:+.3f}; "
                    f"the project's target: the fine-tuned encoder ahead, {verdict(gap, 0.0, strict=True)}."
                )
    return lines


def curve_section(
    classification: MetricsDoc, records: Sequence[MatrixRecord], targets: Targets | None = None
) -> list[str]:
    """What a matrix buys a small model: the table with the transformer ceiling, the figure, the
    project's curve targets that apply; nothing when the run drew no curve."""
    if not curve_points(classification):
        return []
    met = _targets(classification, records, targets) if targets else []
    runs = max(
        (p[2] for s in curve_points(classification).values() for sz in s.values() for p in sz.values()),
        default=1,
    )
    return [
        f"Test macro-F1 (mean ± sd over up to {runs} nested, stratified training draws) of a small model "
        "trained on top of each matrix with a given number of training texts per class, against a random "
        "matrix and word2vec trained on the same texts; each cell shows the best consumer there (in "
        "brackets). The ceiling is the transformer itself, fine-tuned on the same training texts (the "
        "`ceiling` stage: the base encoder, the same draws; at the full split, the `finetune` stage's "
        "classifier).",
        "",
        *_headline(classification, records),
        "",
        f"![learning curves](../plots/{PNG_DIR}/{CURVES_PNG})",
        "",
        *(["The project's targets for this model:", "", *found, ""] if (found := met) else []),
    ]


def curve_details(classification: MetricsDoc, records: Sequence[MatrixRecord]) -> list[str]:
    """The learning curve of every consumer, one table each; nothing when the run drew no curve."""
    lines = _per_series(classification, records)
    return ["## Learning curves per consumer", "", *lines] if lines else []


def _per_series(classification: MetricsDoc, records: Sequence[MatrixRecord]) -> list[str]:
    """One compact table per consumer: mean ± sd macro-F1."""
    points = curve_points(classification)
    sizes = size_keys(classification)
    series = sorted({s for m in points.values() for s in m})  # not the file's key order: same either way
    lines = []
    for name in series:
        rows = []
        for matrix in _order(points, records):
            got = points[matrix].get(name, {})
            rows.append([matrix, *(f"{got[s][0]:.3f} ± {got[s][1]:.3f}" if s in got else "–" for s in sizes)])
        lines += [f"Consumer `{name}`:", "", *table(["matrix", *sizes], rows), ""]
    return lines


def curve_table(classification: MetricsDoc) -> pd.DataFrame:
    """plots/curves.csv: one row per matrix, consumer and size, with error-bar ends for `dvc plots`."""
    rows_of = classification.mapping(CURVES, TRAIN_ROWS)
    f1, acc = curve_points(classification, MACRO_F1), curve_points(classification, ACCURACY)
    # the ceiling is drawn in every consumer's panel, so it repeats once per series
    series = list(dict.fromkeys(name for m in f1.values() for name in m))
    if f1 and (top := ceiling_points(classification)):
        f1[CEILING_ROW] = dict.fromkeys(series, top)
        acc[CEILING_ROW] = dict.fromkeys(series, ceiling_points(classification, ACCURACY))
    rows = [
        {
            "matrix": matrix,
            "series": name,
            "size": size,
            "train_rows": int(rows_of.get(size, 0)),
            MACRO_F1: mean,
            MACRO_F1 + SD: sd,
            "low": round(mean - sd, 4),
            "high": round(mean + sd, 4),
            ACCURACY: acc.get(matrix, {}).get(name, {}).get(size, (None,))[0],
            RUNS: runs,
        }
        for matrix, curves in f1.items()
        for name, sizes in curves.items()
        for size, (mean, sd, runs) in sizes.items()
        if size in rows_of
    ]
    columns = [
        "matrix",
        "series",
        "size",
        "train_rows",
        MACRO_F1,
        MACRO_F1 + SD,
        "low",
        "high",
        ACCURACY,
        RUNS,
    ]
    return pd.DataFrame(rows, columns=columns)
