"""The "what was tried" table: bench/tried.py over the result files (moved here from tests/test_tried.py)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
TRIED = ROOT / "bench" / "results" / "tried.json"
M3E = "pkg:embedding/m3e-small"


def _bench() -> dict:
    return runpy.run_path(str(ROOT / "bench" / "tried.py"))


def test_the_committed_table_is_what_the_result_files_give() -> None:
    """Fails when a result file changes and bench/tried.py was not re-run (or the file was edited by hand)."""
    assert _bench()["main"](["--check"]) == 0


def test_each_row_is_the_rule_s_pick_among_its_candidates() -> None:
    bench = _bench()
    doc = json.loads(TRIED.read_text(encoding="utf-8"))
    for (approach, _, candidates), row in zip(bench["approaches"](), doc["rows"], strict=False):
        assert row["approach"] == approach and row["candidates"] == len(candidates)
        assert row["scores"]["multisimlex_zh:dev"] == max(c[1]["multisimlex_zh:dev"] for c in candidates)
    joint = [c for a, _, c in bench["approaches"]() if a.startswith("Mirror-BERT jointly")][0]
    assert [label for label, _ in joint] == ["0.01", "0.1", "1.0"]  # weight 0 is main, not a candidate
    assert joint[0][1] == pytest.approx(
        {
            "multisimlex_zh:dev": 0.634,
            "multisimlex_zh:held": 0.594,
            "multisimlex_zh": 0.615,
            "wordsim240": 0.605,
            "wordsim297": 0.67,
            "ca_translated": 0.354,
        }
    )
    assert doc["source"] == M3E and doc["rows"][-1]["approach"].startswith("the peer")
