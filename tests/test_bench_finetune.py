"""Smoke run of bench/finetune_throughput.py: every mode, a few steps, on the tiny model."""

from __future__ import annotations

import functools
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
ROW_KEYS = {"mode", "batch_size", "batches", "seconds", "real_tokens_per_s", "pad_fraction", "real_gflops"}


def test_finetune_throughput_smoke(
    tiny_model_dir: Path, prepared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # as when run as a script: `from peak import matmul_peak`
    import peak

    # The peak is measured on 2048 x 2048 matmuls, seconds on a busy box; a small one is enough here.
    monkeypatch.setattr(peak, "matmul_peak", functools.partial(peak.matmul_peak, n=128, reps=1))
    threads = torch.get_num_threads()  # one thread: faster for a tiny model on a shared box
    torch.set_num_threads(1)
    out = tmp_path / "results" / "finetune_throughput"
    argv = ["finetune_throughput.py", "--model", str(tiny_model_dir), "--prepared", str(prepared_dir)]
    monkeypatch.setattr(sys, "argv", [*argv, "--max-batches", "2", "--warmup", "1", "--out", str(out)])
    try:
        runpy.run_path(str(BENCH / "finetune_throughput.py"), run_name="__main__")
    finally:
        torch.set_num_threads(threads)

    result = json.loads(out.with_suffix(".json").read_text())
    assert result["peak_gflops"] > 0
    rows = {r["mode"]: r for r in result["rows"]}
    assert list(rows) == ["stage", "naive", "trainer-defaults"]
    for mode, row in rows.items():
        assert set(row) == ROW_KEYS, mode
        assert row["batches"] == 2 and row["seconds"] > 0 and row["real_tokens_per_s"] > 0, mode
        assert 0 <= row["pad_fraction"] < 1 and row["real_gflops"] > 0, mode
    assert rows["stage"]["batch_size"] == 32 and rows["trainer-defaults"]["batch_size"] == 8
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| ") == 4 and "| stage | 32 | 2 |" in table  # header + 3 modes
    assert table in capsys.readouterr().out
