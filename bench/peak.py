"""The fp32 matmul peak that the throughput benchmarks report their FLOP rates against."""

from __future__ import annotations

import time

import torch


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """Best observed fp32 GFLOP/s of an n x n matmul with torch's default threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = 0.0
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best
