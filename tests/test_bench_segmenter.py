"""A smoke run of bench/segmenter_speed.py on the tiny prepared data: it runs and writes its table."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_segmenter_speed_smoke_run(
    tmp_path: Path, prepared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = tmp_path / "dict.txt"  # a jieba dictionary file: `word freq tag` lines
    words.write_text("外卖 3 n\n好吃 3 a\nAT&T 3 nz\n", encoding="utf-8")
    out = tmp_path / "segmenter_speed"
    argv = ["--prepared", str(prepared_dir), "--out", str(out), "--seconds", "0.01", "--batch", "4"]
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))  # the worker processes import embedforge
    monkeypatch.setattr(sys, "argv", ["segmenter_speed.py", *argv, "--jieba-dict", str(words)])
    runpy.run_path(str(ROOT / "bench" / "segmenter_speed.py"), run_name="__main__")

    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert [r["name"].split(" ")[0] for r in result["rows"]] == [
        "jieba",
        *["`WordSegmenter.segment`", "`encode_batch`"] * 2,
    ]
    assert all(r["texts_per_s"]["1"] > 0 and r["texts_per_s"]["2"] > 0 for r in result["rows"])
    for row in result["rows"][1::2]:
        assert 0.5 < row["agreement"]["tokens"] <= 1 and 0 < row["agreement"]["words"] <= 1
    assert result["source"] == str(prepared_dir)
    table = out.with_suffix(".md").read_text(encoding="utf-8")
    assert result["cpu"] in table and table.count("\n| ") == 6  # header + five rows
