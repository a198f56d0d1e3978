"""metrics/report.md: one row per matrix, one column per benchmark and the probe, best per column in bold.

It is built from the metrics dictionaries only, so it can also be rebuilt from the metrics files of an
older run (`report_from_files`). A key such a file lacks shows as `n/a` and is listed under the table;
a value of the wrong type is an error naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import read_json

SIMILARITY_FILE = "metrics/similarity.json"
CLASSIFICATION_FILE = "metrics/classification.json"
PROBE_VARIANTS = ("frozen", "trainable")
MISSING = object()


@dataclass
class _Lookup:
    """Reads nested metric values, remembering the keys that are missing."""

    files: tuple[str, str]
    missing: list[str] = field(default_factory=list)

    def get(self, data: dict, keys: Sequence[str], file_no: int) -> float | None | object:
        """A number, None (recorded as null: undefined) or MISSING (key absent: noted under the table)."""
        value: object = data
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                self.missing.append(f"{self.files[file_no]}: {'.'.join(keys)}")
                return MISSING
            value = value[key]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EmbedforgeError(
                f"{self.files[file_no]}: {'.'.join(keys)} = {value!r}; expected a number or null"
            )
        return float(value)


def _fmt(value: float | None | object, best: bool, coverage: float | None | object = 1.0) -> str:
    """A table cell: 3 decimals, bold when best, coverage appended when not complete."""
    if value is MISSING:
        return "n/a"
    text = "–" if value is None else f"{value:.3f}"
    if best and value is not None:
        text = f"**{text}**"
    if isinstance(coverage, float) and coverage < 0.995:
        text += f" ({coverage:.0%})"
    return text


def _benchmarks(similarity: dict, metric: str) -> list[str]:
    """Benchmark keys carrying `metric` in any matrix, in first-seen order."""
    keys: dict[str, None] = {}
    for values in similarity.values():
        if isinstance(values, dict):
            keys.update({k: None for k, v in values.items() if isinstance(v, dict) and metric in v})
    return list(keys)


def _mapping(data: object, file: str) -> dict:
    """A metrics file must hold a JSON object."""
    if not isinstance(data, dict):
        raise EmbedforgeError(f"{file}: expected a JSON object of metrics, got {type(data).__name__}")
    return data


def _table(
    similarity: dict,
    classification: dict,
    rows: list[str],
    sims: list[str],
    analogies: list[str],
    look: _Lookup,
) -> list[str]:
    """The Markdown summary table."""
    columns: list[tuple[str, int, tuple[str, ...], tuple[str, ...] | None]] = [
        *((f"{b} ρ", 0, (b, "spearman"), (b, "coverage")) for b in sims),
        *((f"{b} acc", 0, (b, "accuracy"), (b, "coverage")) for b in analogies),
        *((f"probe {v}", 1, (v, "accuracy"), None) for v in PROBE_VARIANTS),
    ]
    probe = classification.get("probe") or {}
    cells: dict[tuple[str, int], tuple[object, object]] = {}
    for row in rows:
        baseline = row not in similarity and row in probe
        for c, (_, file_no, keys, cov_keys) in enumerate(columns):
            if baseline and file_no == 0:
                cells[row, c] = ("", None)
                continue
            source, prefix = (similarity, (row,)) if file_no == 0 else (classification, ("probe", row))
            value = look.get(source, (*prefix, *keys), file_no)
            coverage = (
                look.get(source, (*prefix, *cov_keys), file_no) if cov_keys and value is not MISSING else 1.0
            )
            cells[row, c] = (value, coverage)
    lines = ["| matrix | " + " | ".join(t for t, *_ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        out = []
        for c in range(len(columns)):
            value, coverage = cells[row, c]
            if value == "":
                out.append("")
                continue
            numbers = [v for (_, col), (v, _) in cells.items() if col == c and isinstance(v, float)]
            best = isinstance(value, float) and bool(numbers) and value == max(numbers)
            out.append(_fmt(value, best, coverage))
        lines.append(f"| {row} | " + " | ".join(out) + " |")
    return lines


def _best(similarity: dict, rows: list[str], bench: str, keep: object) -> tuple[str, float] | None:
    """The row with the highest Spearman on `bench` among rows for which keep(row) is true."""
    scored = [
        (r, similarity[r][bench]["spearman"])
        for r in rows
        if keep(r)
        and isinstance(similarity.get(r, {}).get(bench), dict)  # type: ignore[operator]
        and isinstance(similarity[r][bench].get("spearman"), (int, float))
    ]
    return max(scored, key=lambda x: x[1]) if scored else None


def _cls_summary(similarity: dict, rows: list[str], sims: list[str], strategy: dict[str, str]) -> list[str]:
    """One line per similarity set: the best `cls` matrix against the best of the other strategies."""
    lines = []
    for bench in sims:
        cls = _best(similarity, rows, bench, lambda r: strategy.get(r) == "cls")
        other = _best(similarity, rows, bench, lambda r: strategy.get(r) not in ("cls", None))
        if cls and other:
            verdict = "ahead of" if cls[1] > other[1] else "behind"
            lines.append(
                f"- {bench}: cls best {cls[1]:.3f} ({cls[0]}) is {verdict} the best other strategy "
                f"{other[1]:.3f} ({other[0]})."
            )
    return lines


def _probe_summary(probe: dict) -> list[str]:
    """Best pretrained matrix against the random matrix of the same shape, per probe variant."""
    lines = []
    for variant in PROBE_VARIANTS:
        acc = {r: v.get(variant, {}).get("accuracy") for r, v in probe.items() if isinstance(v, dict)}
        acc = {r: a for r, a in acc.items() if isinstance(a, (int, float))}
        pretrained = {r: a for r, a in acc.items() if not r.startswith("random")}
        random = {r: a for r, a in acc.items() if r.startswith("random")}
        if pretrained and random:
            best = max(pretrained, key=pretrained.__getitem__)
            rand = max(random.values())
            lines.append(
                f"- probe ({variant} vectors): best pretrained {pretrained[best]:.3f} ({best}) vs random "
                f"{rand:.3f}: {pretrained[best] - rand:+.3f}."
            )
    return lines


def _classifier(
    finetuned: object, look: _Lookup, confusion: np.ndarray | None, names: list[str]
) -> list[str]:
    """The fine-tuned classifier's test scores, per-class table and confusion matrix."""
    if not isinstance(finetuned, dict):
        look.get({}, ("finetuned",), 1)
        return []
    acc, f1 = (look.get(finetuned, (k,), 1) for k in ("accuracy", "macro_f1"))
    lines = [
        "## Fine-tuned classifier (test split)",
        "",
        f"accuracy {_fmt(acc, False)}, macro-F1 {_fmt(f1, False)}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, v in (finetuned.get("per_class") or {}).items():
        vals = [_fmt(look.get(v, (k,), 1), False) for k in ("precision", "recall", "f1")]
        lines.append(f"| {name} | " + " | ".join(vals) + f" | {v.get('support', 'n/a')} |")
    if confusion is not None:
        lines += [
            "",
            "Confusion matrix (rows: true class, columns: predicted):",
            "",
            "| | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        lines += [
            f"| {n} | " + " | ".join(str(int(x)) for x in row) + " |"
            for n, row in zip(names, confusion, strict=True)
        ]
    return lines


def build_report(
    similarity: dict,
    classification: dict,
    entries: list[dict] | None = None,
    sims: list[str] | None = None,
    analogies: list[str] | None = None,
    confusion: np.ndarray | None = None,
    label_names: Sequence[str] = (),
    files: tuple[str, str] = (SIMILARITY_FILE, CLASSIFICATION_FILE),
) -> str:
    """The Markdown report; benchmarks default to those found in the metrics."""
    similarity, classification = _mapping(similarity, files[0]), _mapping(classification, files[1])
    probe = classification.get("probe") if isinstance(classification.get("probe"), dict) else {}
    look = _Lookup(files)
    sims = _benchmarks(similarity, "spearman") if sims is None else sims
    analogies = _benchmarks(similarity, "accuracy") if analogies is None else analogies
    names = [e["name"] for e in entries] if entries else list(similarity)
    rows = list(dict.fromkeys([*names, *(r for r in probe if r not in similarity or entries is None)]))
    strategy = (
        {e["name"]: e.get("strategy") for e in entries}
        if entries
        else {r: r.split("_")[0] for r in rows if not r.startswith("random")}
    )
    lines = [
        "# Evaluation report",
        "",
        "Word similarity: Spearman ρ of cosine against human scores (coverage in brackets when below 100%); "
        "analogy: 3CosAdd accuracy; probe: test accuracy of mean-of-word-vectors + linear layer with the "
        "vectors frozen or trainable (`random`: a random matrix of the same shape). Best per column in bold.",
        "",
        *_table(similarity, classification, rows, sims, analogies, look),
        "",
    ]
    summary = [*_cls_summary(similarity, rows, sims, strategy), *_probe_summary(probe)]
    lines += [*summary, ""] if summary else []
    lines += _classifier(classification.get("finetuned"), look, confusion, list(label_names))
    if look.missing:
        shown = ", ".join(dict.fromkeys(look.missing))
        lines += ["", f"_Missing in the metrics (an older run?), shown as n/a: {shown}_"]
    return "\n".join(lines).rstrip() + "\n"


def report_from_files(
    similarity_path: str | Path = SIMILARITY_FILE, classification_path: str | Path = CLASSIFICATION_FILE
) -> str:
    """Rebuild the report from two metrics files (for example from an older commit)."""
    files = (str(similarity_path), str(classification_path))
    return build_report(read_json(similarity_path), read_json(classification_path), files=files)
