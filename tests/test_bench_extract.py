"""A smoke run of bench/extract_throughput.py on the tiny model: it runs and writes its result structure."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_extract_throughput_smoke_run(
    tmp_path: Path, tiny_model_dir: Path, prepared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "extract_throughput"
    argv = ["--model", str(tiny_model_dir), "--prepared", str(prepared_dir), "--out", str(out)]
    argv += ["--sentences", "20", "--words", "30", "--tutorial-words", "5", "--peak-size", "128"]
    monkeypatch.chdir(ROOT)  # the default extra-words files are relative to the project
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # as when run as a script
    monkeypatch.setattr(sys, "argv", ["extract_throughput.py", *argv])
    runpy.run_path(str(ROOT / "bench" / "extract_throughput.py"), run_name="__main__")

    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert set(result) == {
        "machine",
        "device",
        "model",
        "matmul_peak_gflops",
        "aggregate",
        "words",
        "peak_rss_mb",
    }
    assert result["device"] == "cpu"
    agg, words = result["aggregate"], result["words"]
    assert agg["sentences"] == 20 and agg["tokens"] > 0 and 0 <= agg["padding_fraction"] < 1
    assert set(agg) >= {"seconds", "tokens_per_s", "gflops", "fraction_of_peak"}
    assert words["vocabulary"] == 30 and words["tutorial_timed_words"] == 5
    assert words["stage_seconds"] > 0 and words["speedup"] > 0
    assert "| aggregate throughput |" in out.with_suffix(".md").read_text(encoding="utf-8")
