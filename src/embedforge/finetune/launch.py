"""Processes: how many to run, which one writes, re-launching under torchrun, and the checks before."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import FinetuneParams
from embedforge.core.prepared import PreparedData
from embedforge.finetune.checkpoints import checkpoint_lock

LOCK_HELD = "EMBEDFORGE_FINETUNE_LOCK_HELD"  # set by launch_torchrun for its workers: it holds the lock


def world_size() -> int:
    """Processes in this run (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in a single-process run and in rank 0 of a torchrun run (the one that writes files)."""
    return int(os.environ.get("RANK", "0")) == 0


def requested_nproc(p: FinetuneParams) -> int:
    """Processes to launch: 1 unless DDP is asked for by params or EMBEDFORGE_NPROC."""
    env = os.environ.get("EMBEDFORGE_NPROC", "")
    if p.distributed == "off":
        return 1
    if env:
        if not env.isdigit() or int(env) < 1:
            raise EmbedforgeError(f"EMBEDFORGE_NPROC = {env!r} is not valid; expected a positive integer")
        return int(env)
    if p.distributed == "ddp":
        return p.nproc_per_node or (torch.cuda.device_count() or 2)
    return 1


def run_lock(checkpoint_root: Path) -> AbstractContextManager[object]:
    """The checkpoint lock this process must hold: rank 0's, unless its launcher already holds it."""
    if not is_main_process() or os.environ.get(LOCK_HELD):
        return nullcontext()
    return checkpoint_lock(checkpoint_root)


def launch_torchrun(
    script: Path, nproc: int, prepared: PreparedData, p: FinetuneParams, checkpoint_root: Path
) -> int:
    """Check the data can fill `nproc` processes, then re-run `script` under torchrun; its exit code.

    The checkpoint lock is taken here, before any worker starts, so that a second run is refused with
    one line instead of a failed worker group.
    """
    check_world_fill(prepared.rows("train"), prepared.rows("validation"), nproc, p.batch_size, prepared)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd.append(str(script))
    with checkpoint_lock(checkpoint_root):
        return subprocess.run(cmd, check=False, env={**os.environ, LOCK_HELD: "1"}).returncode


def check_run(p: FinetuneParams) -> None:
    """Cross-field and environment checks that params.yaml validation cannot do."""
    if world_size() > 1 and p.distributed == "off":
        raise EmbedforgeError(
            f"params.yaml: finetune.distributed = 'off' but launched with WORLD_SIZE={world_size()}; "
            "expected 'auto' or 'ddp' under torchrun"
        )
    if p.precision != "fp32" and not torch.cuda.is_available():
        raise EmbedforgeError(
            f"params.yaml: finetune.precision = {p.precision!r} needs a CUDA GPU; expected 'fp32' on CPU"
        )


def check_world_fill(
    train_rows: int, val_rows: int, world_size: int, batch_size: int, prepared: PreparedData
) -> None:
    """Every process needs at least one full training batch and one validation example."""
    if train_rows < world_size * batch_size:
        raise EmbedforgeError(
            f"{prepared.split_path('train')}: {train_rows} rows cannot fill world size {world_size} x "
            f"finetune.batch_size {batch_size}; expected at least {world_size * batch_size} rows "
            "(use fewer processes or a smaller batch)"
        )
    if val_rows < world_size:
        raise EmbedforgeError(
            f"{prepared.split_path('validation')}: {val_rows} rows cannot fill world size {world_size}; "
            f"expected at least {world_size} rows"
        )
