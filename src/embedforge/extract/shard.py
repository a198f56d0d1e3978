"""Extraction across processes (torch.distributed): this rank's share of the work, and the reductions.

Under `torchrun` (WORLD_SIZE > 1) every rank loads the model and the vocabulary; the isolated strategies
split the words (item i goes to rank i % world), `aggregate` splits the corpus windows (window i to rank
i % world, in steps of `world` windows). Sums and counts are all-reduced; rank 0 alone writes files.
The process group is `gloo` for CPU tensors plus `nccl` for CUDA ones when the run is on GPUs; every
reduced tensor (sums, counts) lives on the CPU, so the reductions go through gloo either way.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from embedforge.core.errors import EmbedforgeError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's place in the run: `rank` of `world` (0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The process that writes files (and shows progress)."""
        return self.rank == 0

    def take(self, items: Sequence[T]) -> list[T]:
        """This rank's share of a list: every world-th item from its rank."""
        return list(items[self.rank :: self.world])

    def mine(self, items: Iterable[T]) -> Iterator[T]:
        """This rank's share of a stream (`take`, lazily): item i when i % world == rank. For corpus
        windows this is the share `aggregate` gives the rank too (`steps`)."""
        return itertools.islice(items, self.rank, None, self.world)

    def share_rows(self, rows: int, window: int) -> int:
        """Sentences in this rank's windows (`mine`) of a corpus of `rows` sentences cut into `window`s."""
        n_windows = -(-rows // window)
        return sum(min(window, rows - i * window) for i in range(self.rank, n_windows, self.world))

    def sum_counts(self, counts: Counter[str]) -> Counter[str]:
        """Word counts summed over the ranks; every rank gets the total (one process: `counts` itself).
        Memory: each rank holds every rank's distinct words once, during the merge."""
        if self.world == 1:
            return counts
        parts: list[Counter[str] | None] = [None] * self.world
        dist.all_gather_object(parts, counts)
        total: Counter[str] = Counter()
        for part in parts:
            total.update(part)
        return total

    def sum_(self, *tensors: torch.Tensor) -> None:
        """All-reduce (sum) CPU tensors in place; nothing to do in a single process."""
        if self.world > 1:
            for t in tensors:
                dist.all_reduce(t)

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a same-shaped tensor, in rank order."""
        if self.world == 1:
            return [tensor]
        out = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(out, tensor)
        return out

    def steps(self, windows: Iterable[T]) -> Iterator[list[T]]:
        """Consecutive groups of `world` windows (the last may be short): one step of every rank."""
        group: list[T] = []
        for window in windows:
            group.append(window)
            if len(group) == self.world:
                yield group
                group = []
        if group:
            yield group


ONE_PROCESS = Shard()


def current_shard() -> Shard:
    """This process's shard; under torchrun, joins the process group first (once)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Shard()
    if not dist.is_available():
        raise EmbedforgeError(f"WORLD_SIZE={world}, but this torch build has no torch.distributed")
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        log.info("rank %d of %d (%s)", dist.get_rank(), world, backend)
    return Shard(dist.get_rank(), dist.get_world_size())


def rank_device(spec: str) -> str:
    """The device of this rank: `auto`/`cuda` under torchrun mean the GPU of LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and spec in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    return spec
