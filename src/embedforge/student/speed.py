"""What a model costs to run, measured side by side: raw text in, probabilities out, on the same threads.

Figures are wall-clock measurements of this machine at this moment: unlike every other number the pipeline
writes, they differ from run to run (ratios measured in one run are steadier than the rates).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

Predict = Callable[[Sequence[str]], Any]  # texts -> probabilities
THROUGHPUT_BATCH = 256  # texts per call when timing throughput
LATENCY_TEXTS = 100  # texts timed one at a time for the latency percentiles


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def folder_bytes(folder: str | Path, skip: Sequence[str] = ()) -> int:
    """The size on disk of the files in a folder (recursively), leaving out names in `skip`."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file() and f.name not in skip)


def throughput(predict: Predict, texts: Sequence[str], batch: int = THROUGHPUT_BATCH) -> float:
    """Texts per second over all of `texts`, in calls of `batch` texts, after one warm-up call."""
    predict(texts[:batch])
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        predict(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


def latency_ms(predict: Predict, texts: Sequence[str], n: int = LATENCY_TEXTS) -> dict[str, float]:
    """p50 / p95 milliseconds of one text per call, over the first `n` texts."""
    predict(texts[:1])
    times = []
    for text in texts[:n]:
        start = time.perf_counter()
        predict([text])
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def timed_load(load: Callable[[], Any]) -> tuple[Any, float]:
    """What `load()` returns, and the seconds it took."""
    start = time.perf_counter()
    loaded = load()
    return loaded, time.perf_counter() - start


def measure(predict: Predict, texts: Sequence[str], load_s: float, disk_bytes: int) -> dict[str, float]:
    """One row of the speed table."""
    return {
        "texts_per_s": throughput(predict, texts),
        **latency_ms(predict, texts),
        "load_s": load_s,
        "disk_mb": disk_bytes / 1e6,
    }


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__}
