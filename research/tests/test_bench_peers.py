"""Smoke runs of the issue-10 bench scripts on the tiny model: peers.py, lexical_study.py, x2static.py"""

from __future__ import annotations

import importlib.util
import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run bench/<script> as `python bench/<script> argv...` from the project root."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    monkeypatch.setattr(sys, "argv", [script, *argv])
    runpy.run_path(str(ROOT / "bench" / script), run_name="__main__")


@pytest.mark.skipif(
    importlib.util.find_spec("skeletoken") is None,
    reason="model2vec's distill needs skeletoken (`pip install -e .[peers]`); the dev extra installs it",
)
def test_peers_smoke_run(
    tmp_path: Path, tiny_model_dir: Path, prepared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "peers"
    w2v = tmp_path / "peer.txt"
    argv = ["--model", str(tiny_model_dir), "--prepared", str(prepared_dir), "--out", str(out)]
    run_bench("peers.py", [*argv, "--word2vec", str(w2v)], monkeypatch)

    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert result["model2vec"] == "0.10.0" and result["words"] > 0
    assert {"wordsim240", "multisimlex_zh", "multisimlex_zh:dev", "ca_translated"} <= set(result["scores"])
    assert "| multisimlex_zh |" in out.with_suffix(".md").read_text(encoding="utf-8")
    header = w2v.read_text(encoding="utf-8").splitlines()[0].split()
    assert int(header[0]) == result["words"] and int(header[1]) == result["dim"]


@pytest.mark.slow  # prepares the whole default data set (jieba over 12k reviews)
def test_lexical_study_smoke_run(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "study"
    argv = ["--model", str(tiny_model_dir), "--quick", "--out", str(out)]
    argv += ["--mirror-words", "64", "--mirror-batch", "8"]
    run_bench("lexical_study.py", argv, monkeypatch)

    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert result["rows"] and result["vocab_size"] > 0 and len(result["mirror"]) == 2
    assert {"msl_dev", "wordsim240"} <= set(result["selected"])
    assert "msl_dev" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_x2static_smoke_run(
    tmp_path: Path, tiny_model_dir: Path, prepared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    general = tmp_path / "general.txt"
    general.write_text("今天天气很好，我们去公园。\n外卖送得很快，味道不错。\n", encoding="utf-8")
    out = tmp_path / "x2s"
    argv = ["--model", str(tiny_model_dir), "--prepared", str(prepared_dir), "--layers", "1", "2"]
    argv += ["--general", str(general), "--task-sentences", "30", "--epochs", "2", "--out", str(out)]
    run_bench("x2static.py", argv, monkeypatch)

    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert result["corpus"]["sentences_used"] == 32 and result["corpus"]["words_seen"] > 0
    scores = result["scores"]
    for init in ("random", "decontext"):
        assert {"multisimlex_zh:dev", "wordsim240", "ca_translated", "wordsim297:seen"} <= set(
            scores[f"x2static[{init}, lr 0.005] e2"]
        )
    assert result["pick"] in scores and result["teacher_cache_bytes"] > 0
    assert "| x2static[decontext, lr 0.005] e1 |" in out.with_suffix(".md").read_text(encoding="utf-8")
