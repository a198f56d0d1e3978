"""The report's section on the shipped student (metrics/student.json of the `student` stage): what replacing
the fine-tuned transformer with it loses and gains, measured side by side in one run."""

from __future__ import annotations

from embedforge.core.metrics import ACCURACY, MACRO_F1
from embedforge.evaluate.files import MetricsDoc
from embedforge.evaluate.render.markdown import number, table
from embedforge.evaluate.render.targets import StudentTargets, verdict

ROWS = ("transformer", "student")


def _row(doc: MetricsDoc, key: str, label: str) -> list[object]:
    n = lambda k: doc.number(key, k) or 0.0  # noqa: E731
    return [
        label,
        number(doc.number(key, MACRO_F1)),
        number(doc.number(key, ACCURACY)),
        f"{n('texts_per_s'):,.0f}",
        f"{n('p50_ms'):.1f} / {n('p95_ms'):.1f}",
        f"{n('disk_mb'):.1f} MB",
        f"{n('load_s'):.2f} s",
    ]


def _verdicts(doc: MetricsDoc, targets: StudentTargets | None) -> list[str]:
    if targets is None:
        return []
    gap = (doc.number("transformer", MACRO_F1) or 0.0) - (doc.number("student", MACRO_F1) or 0.0)
    checks = []
    if targets.within is not None:
        checks.append(
            f"within {targets.within:.3f} macro-F1 of the transformer: {verdict(-gap, -targets.within)}"
        )
    if targets.speedup is not None:
        speedup = doc.number("speedup") or 0.0
        checks.append(f"≥ {targets.speedup:g}x its texts/s: {verdict(speedup, targets.speedup)}")
    if targets.size_ratio is not None:
        ratio = doc.number("size_ratio") or 0.0
        checks.append(f"≤ 1/{targets.size_ratio:g} of its size: {verdict(ratio, targets.size_ratio)}")
    return [f"The project's targets for the student: {'; '.join(checks)}.", ""] if checks else []


def student_section(doc: MetricsDoc | None, targets: StudentTargets | None = None) -> list[str]:
    """`## The small model to ship`: the speed / size / F1 table, the rule that chose its matrix, the
    candidates; empty when the run has no student."""
    if doc is None or not doc.has("student", MACRO_F1):
        return []
    matrix = doc.text("matrix") or "?"
    setup = doc.mapping("setup")
    how = f"{setup.get('consumer')} on `{matrix}`" + (", vectors trained" if setup.get("trainable") else "")
    machine = doc.mapping("machine")
    gap = (doc.number("transformer", MACRO_F1) or 0.0) - (doc.number("student", MACRO_F1) or 0.0)
    candidates = doc.mapping("candidates")
    cand_rows = [
        [
            f"`{name}`" + (" (shipped)" if name == matrix else ""),
            number(c["validation_macro_f1"]),
            number(c["test"][MACRO_F1]),
        ]
        for name, c in candidates.items()
    ]
    return [
        "## The small model to ship",
        "",
        f"`models/student/` ({how}; loss `{setup.get('loss')}`: the labels, the transformer's logits or "
        "both) "
        'loads with `embedforge.load_classifier("models/student")` and takes raw text. Beside the fine-tuned '
        "transformer, both loaded from their folders and run on the raw test texts in one process:",
        "",
        *table(
            [
                "model",
                "test macro-F1",
                "accuracy",
                "texts/s (batch 256)",
                "p50 / p95 ms (1 text)",
                "on disk",
                "load",
            ],
            [_row(doc, "transformer", "fine-tuned transformer"), _row(doc, "student", f"student ({how})")],
        ),
        "",
        f"The student runs {doc.number('speedup') or 0:.0f}x as many texts per second at "
        f"1/{doc.number('size_ratio') or 0:.0f} of the size, {gap * 100:.1f} macro-F1 points "
        f"{'below' if gap >= 0 else 'above'} the transformer; "
        f"{(doc.number('student', 'coverage') or 0):.0%} of the test words have a row (the rest are left "
        "out). "
        f"Timed on {machine.get('cpu', '?')}, {machine.get('threads', '?')} threads, "
        f"{int(doc.number('timed_texts') or 0):,} texts; timings differ from run to run, the scores "
        "do not.",
        "",
        *_verdicts(doc, targets),
        f"Its matrix: {doc.text('rule')}, among `student.matrices`:",
        "",
        *table(["candidate", "validation macro-F1", "test macro-F1"], cand_rows),
        "",
    ]
