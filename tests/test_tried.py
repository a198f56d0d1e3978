"""Issue 10's "what was tried" table: bench/tried.py over the result files, and the report that shows it."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import parse_params
from embedforge.evaluate.documents import SELECTION_KEY, SIMILARITY_FILE, MetricsDoc
from embedforge.evaluate.report import LEXICAL_GOALS, _lexical_goals
from embedforge.evaluate.tried import TRIED_KEY, read_tried
from embedforge.fingerprint import stage_fingerprints

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


def _similarity(tried: dict | None) -> MetricsDoc:
    sets = {s: {"spearman": v} for s, v in [("multisimlex_zh:dev", 0.61), ("wordsim240", 0.7)]}
    selection = {"matrices": {"best": sets}, **({TRIED_KEY: tried} if tried else {})}
    data = {
        "best": {"wordsim240": {"spearman": 0.7}, "ca_translated": {"accuracy": 0.44}},
        SELECTION_KEY: selection,
    }
    return MetricsDoc.of(data, SIMILARITY_FILE)


def test_the_report_shows_the_table_under_the_goals_for_the_same_model_only() -> None:
    text = "\n".join(_lexical_goals(_similarity(read_tried(TRIED, M3E)), "best"))
    assert "| **this run's recommended matrix** (best) | 0.610 | – | – | 0.700 | – | 0.440 |" in text
    assert (
        "(base / ens(5 templates) / all / 3-4 / center; `bench/results/lexical_study_finetuned.json`)" in text
    )
    goals = " | ".join(f"{LEXICAL_GOALS[s]:.3f}" for s in ("multisimlex_zh", "wordsim240", "wordsim297"))
    assert f"| goal |  |  | {goals} | 0.432 |" in text
    assert "Why it stops here: Every approach that changes the encoder's weights" in text
    other = "\n".join(_lexical_goals(_similarity(read_tried(TRIED, "pkg:other")), "best"))
    assert "| goal |" not in other and "not this run's model pkg:other: not shown" in other
    assert 'README, "What was tried for issue 10"' in "\n".join(_lexical_goals(_similarity(None), "best"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "expected a JSON object with 'source' and 'rows'"),
        ('{"rows": []}', "key 'source' missing"),
        ('{"source": "m"}', "key 'rows' missing"),
        ('{"source": "m", "rows": [1]}', r"rows\[0\] is not an object"),
        ('{"source": "m", "rows": [{"approach": "a", "file": "f"}]}', r"rows\[0\].pick missing"),
        (
            '{"source": "m", "rows": [{"approach": "a", "file": "f", "pick": "p", "scores": {"s": "hi"}}]}',
            "scores",
        ),
    ],
)
def test_a_bad_tried_file_is_a_one_line_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tried.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=message):
        read_tried(path, "m")


def test_tried_file_is_a_fingerprinted_param() -> None:
    params = parse_params({"evaluate": {"tried_file": str(TRIED)}})
    assert stage_fingerprints(params)["evaluate"]["tried_file"]["md5"]
    assert stage_fingerprints(parse_params({}))["evaluate"]["tried_file"] is None
