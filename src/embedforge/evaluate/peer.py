"""The peer row of the report (issue 10): another method's vectors of the same encoder, scored elsewhere.

`evaluate.peer_file` names a JSON file as `bench/peers.py` writes it (`source`: the model source the peer
was computed from; `scores`: `<set>` -> {"spearman": ...}; `method` or `model2vec`: what made it). The
recommended-matrix table shows its Spearman per set only when `source` is this run's `model.source`: a
peer of another encoder is no comparison, so the report then says so in one line instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import read_json

PEER_KEY = "peer"  # similarity.json: selection.peer = {file, method, source, scores} or {file, note}


def _method(doc: dict[str, Any], path: Path) -> str:
    if isinstance(doc.get("method"), str):
        return str(doc["method"])
    if isinstance(doc.get("model2vec"), str):  # bench/peers.py before it wrote `method`
        return f"model2vec {doc['model2vec']} distill"
    return path.stem


def read_sourced(path: Path, content: str) -> tuple[dict[str, Any], str]:
    """A bench result file of one model source (the peer's, `bench/tried.py`'s): its JSON object and its
    `source`; a one-line error naming the file when either is missing. `content` names the other key."""
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise EmbedforgeError(f"{path}: expected a JSON object with 'source' and {content}")
    source = doc.get("source")
    if not isinstance(source, str):
        raise EmbedforgeError(f"{path}: key 'source' missing or not a string; expected a model source")
    return doc, source


def read_peer(path: str | Path, model_source: str) -> dict[str, Any]:
    """selection's `peer` entry: the peer's Spearman per set when it was computed from `model_source`,
    else a note saying which source it was computed from."""
    path = Path(path)
    doc, source = read_sourced(path, "'scores' (a peer file)")
    scores = doc.get("scores")
    if not isinstance(scores, dict):
        raise EmbedforgeError(f"{path}: key 'scores' missing or not an object; expected sets -> {{spearman}}")
    entry: dict[str, Any] = {"file": str(path), "method": _method(doc, path), "source": source}
    if source != model_source:
        return entry | {"note": f"computed from {source}, not this run's model {model_source}: not shown"}
    spearman: dict[str, float | None] = {}
    for name, value in scores.items():
        if not isinstance(value, dict) or "spearman" not in value:
            continue  # an analogy set: accuracy, not in the Spearman table
        rho = value["spearman"]
        if rho is not None and not isinstance(rho, (int, float)):
            raise EmbedforgeError(f"{path}: scores.{name}.spearman = {rho!r}; expected a number or null")
        spearman[name] = None if rho is None else float(rho)
    return entry | {"scores": spearman}
