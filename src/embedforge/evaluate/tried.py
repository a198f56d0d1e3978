"""The "what was tried" table of the report (issue 10): each approach's best by the selection rule.

`evaluate.tried_file` names a JSON file as `bench/tried.py` writes it from the bench result files
(`source`: the model source they were measured on; `rule`; `rows`: {approach, file, pick, scores: set ->
value}; `why_it_stops`). As with the peer row, it is shown only when `source` is this run's `model.source`;
results of another encoder say nothing about this run, so the report then gives a one-line note instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedforge.core.errors import EmbedforgeError
from embedforge.evaluate.peer import read_sourced

# similarity.json: selection.tried = {file, source, rule, rows, why_it_stops} or {file, note}
TRIED_KEY = "tried"
ROW_TEXT = ("approach", "file", "pick")


def _row(path: Path, index: int, row: object) -> dict[str, Any]:
    """One approach's row, checked: its texts and its scores (set -> number)."""
    where = f"{path}: rows[{index}]"
    if not isinstance(row, dict):
        raise EmbedforgeError(f"{where} is not an object; expected {{approach, file, pick, scores}}")
    for key in ROW_TEXT:
        if not isinstance(row.get(key), str):
            raise EmbedforgeError(f"{where}.{key} missing or not a string")
    scores = row.get("scores")
    if not isinstance(scores, dict) or not all(isinstance(v, (int, float)) for v in scores.values()):
        raise EmbedforgeError(f"{where}.scores missing or not an object of numbers; expected set -> score")
    return {**{k: row[k] for k in ROW_TEXT}, "scores": {k: float(v) for k, v in scores.items()}}


def read_tried(path: str | Path, model_source: str) -> dict[str, Any]:
    """selection's `tried` entry: the file's rows when they were measured on `model_source`, else a note."""
    path = Path(path)
    doc, source = read_sourced(path, "'rows' (bench/tried.py's file)")
    rows = doc.get("rows")
    if not isinstance(rows, list):
        raise EmbedforgeError(f"{path}: key 'rows' missing or not a list; expected one object per approach")
    checked = [_row(path, i, row) for i, row in enumerate(rows)]
    entry: dict[str, Any] = {"file": str(path), "source": source}
    if source != model_source:
        return entry | {"note": f"measured on {source}, not this run's model {model_source}: not shown"}
    texts = {k: doc[k] for k in ("rule", "why_it_stops") if isinstance(doc.get(k), str)}
    return entry | texts | {"rows": checked}
