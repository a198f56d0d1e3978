"""The Markdown files of metrics/, rendered from the metrics JSON and the embeddings index alone.

`report.md`: one row per matrix, one column per benchmark and probe variant, best per column in bold, then
the classifier. `neighbours.md`: the probe words' nearest neighbours per matrix. Because both are built from
files only, they can be rebuilt from the files of any run (`report_from_files`); a key an older file lacks
shows as `n/a` and is listed under the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from embedforge.core.catalog import MatrixRecord, Strategy
from embedforge.core.files import write_text
from embedforge.core.metrics import ACCURACY, MACRO_F1
from embedforge.evaluate.files import (
    CAPS,
    CLASSIFICATION_FILE,
    CONFUSION,
    FINETUNED_KEY,
    LABELS,
    MATRICES,
    NEIGHBOURS_FILE,
    NEIGHBOURS_MARKDOWN,
    PROBE_KEY,
    RECOMMENDED_KEY,
    REPORT_FILE,
    ROWS_KEY,
    SELECTION_KEY,
    SIMILARITY_FILE,
    STUDENT_FILE,
    VARIANTS,
    MetricsDoc,
    matrix_keys,
    read_docs,
    read_optional,
)
from embedforge.evaluate.render.curves import curve_details, curve_section
from embedforge.evaluate.render.markdown import number as _fmt
from embedforge.evaluate.render.markdown import table
from embedforge.evaluate.render.student import student_section
from embedforge.evaluate.render.targets import Targets, verdict

Cell = tuple[float | None, float | None, bool]  # value, coverage, present in the file


def caps_note(classification: MetricsDoc) -> list[str]:
    """The report's warning when the probes and curves ran on samples; nothing for whole splits."""
    if not classification.has(CAPS):
        return []

    def used(split: str) -> str:
        rows, total = (classification.number(CAPS, f"{split}_rows{x}") for x in ("", "_total"))
        return f"{rows or 0:.0f} of {total or 0:.0f}"

    return [
        "**Capped run** (`evaluate.max_train_rows` / `max_test_rows`): every probe and learning curve "
        f"trained on {used('train')} training texts and was scored on {used('test')} test texts (seeded, "
        "stratified samples, the same for every matrix); the fine-tuned classifier was scored on the whole "
        "test split. Compare these numbers only with runs capped the same way.",
        "",
    ]


def _benchmarks(similarity: MetricsDoc, metric: str) -> list[str]:
    """Benchmark keys carrying `metric` in any matrix, in name order (the same for every run)."""
    keys = {
        k
        for name in matrix_keys(similarity)
        if isinstance(values := similarity.data[name], dict)
        for k, v in values.items()
        if isinstance(v, dict) and metric in v
    }
    return sorted(keys)


def _cell(doc: MetricsDoc, prefix: tuple[str, ...], metric: str, with_coverage: bool) -> Cell:
    """One number and its coverage; absent keys are recorded by the document."""
    present = doc.has(*prefix, metric)
    value = doc.number(*prefix, metric)
    coverage = doc.number(*prefix, "coverage") if with_coverage and present else 1.0
    return value, coverage, present


def _table(
    similarity: MetricsDoc, classification: MetricsDoc, rows: list[str], baselines: set[str]
) -> list[str]:
    """The Markdown summary table."""
    columns: list[tuple[str, Callable[[str], Cell | None]]] = [
        *(
            (
                f"{b} {label}",
                lambda r, b=b, m=metric: None if r in baselines else _cell(similarity, (r, b), m, True),
            )
            for metric, label in (("spearman", "ρ"), (ACCURACY, "acc"))
            for b in _benchmarks(similarity, metric)
        ),
        *(
            (f"probe {v}", lambda r, v=v: _cell(classification, (PROBE_KEY, r, v), ACCURACY, False))
            for v in VARIANTS
        ),
    ]
    grid = [[cell(row) for _, cell in columns] for row in rows]
    best = [
        max((c[0] for c in col if c is not None and c[0] is not None), default=None)
        for col in zip(*grid, strict=True)
    ]
    body = []
    for row, cells in zip(rows, grid, strict=True):
        out = [row]
        for cell, top in zip(cells, best, strict=True):
            if cell is None:
                out.append("")
                continue
            value, coverage, present = cell
            out.append(_fmt(value, value is not None and value == top, coverage, present))
        body.append(out)
    return table(["matrix", *(t for t, _ in columns)], body)


def _best(similarity: MetricsDoc, rows: list[str], bench: str) -> tuple[str, float] | None:
    """The row with the highest Spearman on `bench`, if any has one."""
    keys = [(r, bench, "spearman") for r in rows if similarity.has(r, bench, "spearman")]
    scored = [(k[0], v) for k in keys if (v := similarity.number(*k)) is not None]
    return max(scored, key=lambda x: x[1]) if scored else None


def _cls_summary(similarity: MetricsDoc, records: Sequence[MatrixRecord]) -> list[str]:
    """One line per similarity set: the best `cls` matrix against the best of the other strategies."""
    lines = []
    cls_rows = [r.name for r in records if r.strategy == Strategy.CLS and r.name in similarity.data]
    other_rows = [r.name for r in records if r.strategy != Strategy.CLS and r.name in similarity.data]
    for bench in _benchmarks(similarity, "spearman"):
        cls, other = _best(similarity, cls_rows, bench), _best(similarity, other_rows, bench)
        if cls and other:
            verdict = "ahead of" if cls[1] > other[1] else "behind"
            lines.append(
                f"- {bench}: cls best {cls[1]:.3f} ({cls[0]}) is {verdict} the best other strategy "
                f"{other[1]:.3f} ({other[0]})."
            )
    return lines


def _probe_summary(classification: MetricsDoc, rows: list[str], baselines: set[str]) -> list[str]:
    """Best pretrained matrix against the random matrix of the same shape, per probe variant."""
    lines = []
    for variant in VARIANTS:
        keys = [
            (PROBE_KEY, r, variant, ACCURACY)
            for r in rows
            if classification.has(PROBE_KEY, r, variant, ACCURACY)
        ]
        acc = {k[1]: classification.number(*k) for k in keys}
        pretrained = {r: a for r, a in acc.items() if a is not None and r not in baselines}
        random = [a for r, a in acc.items() if a is not None and r in baselines]
        if pretrained and random:
            best = max(pretrained, key=pretrained.__getitem__)
            lines.append(
                f"- probe ({variant} vectors): best pretrained {pretrained[best]:.3f} ({best}) vs random "
                f"{max(random):.3f}: {pretrained[best] - max(random):+.3f}."
            )
    return lines


def _ci(doc: MetricsDoc, keys: tuple[str, ...], value: str, signed: bool = False) -> str:
    """`.646 [.562, .724]` from a selection record entry (value, low, high)."""
    number, low, high = (doc.number(*keys, k) for k in (value, "low", "high"))
    if number is None:
        return "–"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    text = fmt.format(number)
    return text if low is None or high is None else f"{text} [{fmt.format(low)}, {fmt.format(high)}]"


def _target_cell(value: float | None, target: float | None) -> str:
    """`≥ 0.660: missed by 0.027`, `≥ 0.432: met`, or empty where no target applies."""
    if target is None or value is None:
        return ""
    return f"≥ {target:.3f}: {verdict(value, target)}"


def _which_matrix(
    similarity: MetricsDoc, records: Sequence[MatrixRecord], targets: Targets | None = None
) -> list[str]:
    """The report's answer: the recommended matrix, the rule that picked it and what it saw, and its
    scores beside the tutorial's matrix with intervals (and the project's targets where they apply)."""
    if not similarity.has(SELECTION_KEY):  # no selection set: no recommendation
        return []
    sel = similarity.mapping(SELECTION_KEY)
    best = similarity.data.get(RECOMMENDED_KEY)
    matrices = similarity.mapping(SELECTION_KEY, MATRICES)
    if not isinstance(best, str) or best not in matrices:
        return []
    baseline = sel.get("baseline")
    others = [*([baseline] if baseline in matrices else []), *sorted(set(matrices) - {best, baseline})]
    sets = sorted(similarity.mapping(SELECTION_KEY, MATRICES, best))  # the file's order: sorted keys
    seen, held = (", ".join(sel.get(k) or []) for k in ("seen", "held_out"))
    record = next((r for r in records if r.name == best), None)
    size = (
        f" ({record.words} words × {record.dim} dimensions, {record.words * record.dim * 4 / 2**20:.1f} MB "
        "as float32)"
        if record and record.words and record.dim
        else ""
    )
    goal = targets.recommended if targets else {}
    rows = []
    for s in sets:
        cells = [_ci(similarity, (SELECTION_KEY, MATRICES, name, s), "spearman") for name in [best, *others]]
        if baseline in matrices:
            cells.insert(2, _ci(similarity, (SELECTION_KEY, "difference", s), "difference", True))
        value = similarity.number(best, s, "spearman") if similarity.has(best, s, "spearman") else None
        rows.append([f"{s} ρ", *cells, _target_cell(value, goal.get(s))])
    for bench in _benchmarks(similarity, ACCURACY):  # the analogy sets: accuracy, no interval
        values = [
            similarity.number(name, bench, ACCURACY) if similarity.has(name, bench, ACCURACY) else None
            for name in [best, *others]
        ]
        cells = [_fmt(v) for v in values]
        if baseline in matrices:
            mine, tutorial = values[0], values[1]
            cells.insert(2, "–" if mine is None or tutorial is None else f"{mine - tutorial:+.3f}")
        rows.append([f"{bench} acc", *cells, _target_cell(values[0], goal.get(bench))])
    headers = [
        "benchmark",
        f"{best} (recommended)",
        *([f"{baseline} (tutorial)", "difference (paired)"] if baseline in matrices else []),
        *[o for o in others if o != baseline],
        "the project's target",
    ]
    if not any(row[-1] for row in rows):  # no target applies to this run: no column
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    return [
        "## Which matrix to use",
        "",
        f'**{best}**{size}: `load_embedding("embeddings/{best}")`. It was picked by a rule stated in '
        f"advance: {sel.get('rule', 'n/a')}, on `{sel.get('set')}` ({sel.get('half', '')}). "
        f"The rule saw {seen}; held out: {held}.",
        "",
        f"Spearman ρ with a {sel.get('confidence', 0.95):.0%} percentile bootstrap interval over pairs "
        f"({sel.get('resamples')} resamples); the difference is paired, over the pairs both matrices cover; "
        "`<set>:dev` / `<set>:held` are the selection set's halves; analogy sets: 3CosAdd accuracy.",
        "",
        *table(headers, rows),
        "",
    ]


def _what_it_buys(
    classification: MetricsDoc, records: Sequence[MatrixRecord], targets: Targets | None
) -> list[str]:
    """What a matrix buys a small model (the learning curves against the baselines and the transformer
    ceiling), and the fine-tuned classifier beside it."""
    curves = curve_section(classification, records, targets)
    if not curves:
        curves = [
            "No learning curves in this run (`evaluate.curve_matrices` selects no matrix); the probe "
            "columns under *Every matrix* compare each matrix with a random one of the same shape.",
            "",
        ]
    acc, f1 = (
        classification.number(FINETUNED_KEY, k) if classification.has(FINETUNED_KEY, k) else None
        for k in (ACCURACY, MACRO_F1)
    )
    classifier = (
        [
            f"Beside it, the fine-tuned classifier itself (the transformer, no word matrix) scores macro-F1 "
            f"{_fmt(f1)}, accuracy {_fmt(acc)} on the whole test split.",
            "",
        ]
        if f1 is not None
        else []
    )
    return ["## What it buys a small model", "", *curves, *classifier]


def _classifier(classification: MetricsDoc) -> list[str]:
    """The fine-tuned classifier's test scores, per-class table and confusion matrix."""
    if not classification.mapping(FINETUNED_KEY):
        return []
    acc, f1 = (classification.number(FINETUNED_KEY, k) for k in (ACCURACY, MACRO_F1))
    per_class = classification.mapping(FINETUNED_KEY, "per_class")
    names = classification.strings(FINETUNED_KEY, LABELS) or sorted(per_class)
    rows = []
    for name in names:
        keys = (FINETUNED_KEY, "per_class", name)
        vals = [_fmt(classification.number(*keys, k)) for k in ("precision", "recall", "f1")]
        support = classification.number(*keys, "support")
        rows.append([name, *vals, "n/a" if support is None else int(support)])
    lines = [
        "## Fine-tuned classifier (test split)",
        "",
        f"accuracy {_fmt(acc)}, macro-F1 {_fmt(f1)}",
        "",
        *table(["class", "precision", "recall", "F1", "support"], rows),
    ]
    confusion = classification.counts(FINETUNED_KEY, CONFUSION)
    if confusion is not None:
        lines += [
            "",
            "Confusion matrix (rows: true class, columns: predicted):",
            "",
            *table(["", *names], [[n, *row] for n, row in zip(names, confusion, strict=True)]),
        ]
    return lines


def _genuine_rows(similarity: MetricsDoc, names: list[str]) -> list[str]:
    """Per matrix: rows its strategy made vs stand-ins (fallback:*, unknown:*, empty), and the share of each
    benchmark covered by genuine rows only. Empty for files of runs that did not record row counts."""
    counted = [
        n for n in names if similarity.has(n, ROWS_KEY, "genuine") and similarity.has(n, ROWS_KEY, "total")
    ]
    if not counted:
        return []
    benches = _benchmarks(similarity, "genuine_coverage")
    lines = [
        "## Genuine rows",
        "",
        "Rows made by the matrix's own strategy, and the share of each benchmark whose words all have such "
        "rows (the coverage above counts fallback rows too: an `aggregate` word without corpus contexts gets "
        "its `decontext` vector, a `vectors` word missing from the file a stand-in).",
        "",
    ]
    rows: list[list[object]] = []
    for name in counted:
        total, genuine = (int(similarity.number(name, ROWS_KEY, k) or 0) for k in ("total", "genuine"))
        shares = [
            similarity.number(name, b, "genuine_coverage")
            if similarity.has(name, b, "genuine_coverage")
            else None
            for b in benches
        ]
        cells = ["" if x is None else f"{x:.0%}" for x in shares]
        rows.append([name, total, genuine, total - genuine, *cells])
    return [
        *lines,
        *table(["matrix", "rows", "genuine", "fallback", *(f"{b} genuine" for b in benches)], rows),
        "",
    ]


def build_report(
    similarity: MetricsDoc,
    classification: MetricsDoc,
    records: Sequence[MatrixRecord],
    targets: Targets | None = None,
    student: MetricsDoc | None = None,
) -> str:
    """report.md from the two metrics documents, the embeddings index, the targets that apply and the
    `student` stage's document (when the run has one)."""
    names = [r.name for r in records]
    # Probe rows that are not matrices of the index are the random baselines.
    baselines = set(classification.mapping(PROBE_KEY)) - set(names)
    rows = [*names, *sorted(baselines)]
    lines = [
        "# Evaluation report",
        "",
        *caps_note(classification),
        *_which_matrix(similarity, records, targets),
        *student_section(student, targets.student if targets else None),
        *_what_it_buys(classification, records, targets),
        *curve_details(classification, records),
        "## Every matrix",
        "",
        "Word similarity: Spearman ρ of cosine against human scores (coverage in brackets when below 100%); "
        "analogy: 3CosAdd accuracy; probe: test accuracy of mean-of-word-vectors + linear layer with the "
        "vectors frozen or trainable (`random`: a random matrix of the same shape). Best per column in bold.",
        "",
        *_table(similarity, classification, rows, baselines),
        "",
    ]
    summary = [*_cls_summary(similarity, records), *_probe_summary(classification, rows, baselines)]
    lines += [*summary, ""] if summary else []
    lines += _genuine_rows(similarity, names)
    lines += _classifier(classification)
    missing = [*similarity.missing, *classification.missing]
    if missing:
        shown = ", ".join(dict.fromkeys(missing))
        lines += ["", f"_Missing in the metrics (an older run?), shown as n/a: {shown}_"]
    return "\n".join(lines).rstrip() + "\n"


def build_neighbours(neighbours: MetricsDoc, records: Sequence[MatrixRecord]) -> str:
    """neighbours.md: one section per probe word, one row per matrix."""
    matrices = neighbours.mapping(MATRICES)
    lines = ["# Nearest neighbours (cosine)", ""]
    for word in neighbours.strings("words") or []:
        rows = []
        for record in records:
            found = matrices.get(record.name, {}).get(word)
            text = "(not in the vocabulary)" if found is None else ", ".join(f"{w} {s:.2f}" for w, s in found)
            rows.append([record.name, text])
        lines += [f"## {word}", "", *table(["matrix", "neighbours"], rows), ""]
    return "\n".join(lines)


def report_from_files(
    metrics_dir: str | Path, records: Sequence[MatrixRecord], targets: Targets | None = None
) -> str:
    """report.md rebuilt from a metrics folder (for example of an older commit) and its matrices' records."""
    similarity, classification = read_docs(metrics_dir, SIMILARITY_FILE, CLASSIFICATION_FILE)
    student = read_optional(metrics_dir, STUDENT_FILE)
    return build_report(similarity, classification, records, targets, student)


def neighbours_from_files(metrics_dir: str | Path, records: Sequence[MatrixRecord]) -> str:
    """neighbours.md rebuilt from a metrics folder."""
    (neighbours,) = read_docs(metrics_dir, NEIGHBOURS_FILE)
    return build_neighbours(neighbours, records)


def render_markdown(
    metrics_dir: str | Path, records: Sequence[MatrixRecord], targets: Targets | None = None
) -> None:
    """Write report.md and neighbours.md beside the metrics files they are rendered from."""
    metrics_dir = Path(metrics_dir)
    write_text(metrics_dir / REPORT_FILE, report_from_files(metrics_dir, records, targets))
    write_text(metrics_dir / NEIGHBOURS_MARKDOWN, neighbours_from_files(metrics_dir, records))
