"""Checkpoints: the run key, complete marks and rotation, resume, the DVCLive snapshot, the run lock.

Layout: `<root>/<key>/checkpoint-<step>/` (a checkpoint counts only once it holds COMPLETE),
`<root>/<key>/dvclive/` (the working DVCLive folder), `<root>/.lock` (held by the running run).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed as dist
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import FinetuneParams

COMPLETE = "COMPLETE"  # written last into a checkpoint folder: resumption trusts only marked folders
LIVE_SNAPSHOT = "dvclive"  # the DVCLive folder as of a checkpoint, restored on resume
LOCK_FILE = ".lock"


def file_digest(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_key(
    p: FinetuneParams, lr: float, inputs: Sequence[Path], nproc: int, extra: dict[str, Any] | None = None
) -> str:
    """Short hash naming the checkpoint folder, so a changed param, data file or model is never resumed
    (`extra`: what else the run reads, e.g. the lexical loss's words and pooling)."""
    settings = [dataclasses.asdict(p), lr, nproc] + ([extra] if extra else [])
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for root in inputs:
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file():
                h.update(f"{path.relative_to(root.parent)}:{file_digest(path)}".encode())
    return h.hexdigest()[:16]


@contextmanager
def checkpoint_lock(root: Path) -> Iterator[Path]:
    """Hold the checkpoint root for this run; refuse with one line while another run holds it.

    An flock is released by the OS when its process dies, even by SIGKILL, so a crash never blocks the
    next run. The file itself stays: deleting it would let two runs lock two different files.
    """
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise EmbedforgeError(
                f"{path}: locked by pid {holder}, another finetune run using {root}; "
                "wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def checkpoint_dir(args: TrainingArguments, state: TrainerState) -> Path:
    """The folder the Trainer has just saved a checkpoint to."""
    return Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints carrying the COMPLETE mark, oldest first."""
    found = [p for p in run_dir.glob("checkpoint-*") if (p / COMPLETE).is_file()]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint folder was saved at."""
    return int(checkpoint.name.rsplit("-", 1)[1])


def drop_incomplete(run_dir: Path) -> None:
    """Delete checkpoint folders a kill interrupted while they were being written."""
    for path in run_dir.glob("checkpoint-*"):
        if not (path / COMPLETE).is_file():
            shutil.rmtree(path, ignore_errors=True)


def prepare_run_dir(root: Path, key: str, main: bool) -> tuple[Path, Path | None]:
    """The run's checkpoint folder (other keys' folders removed) and its last complete checkpoint, if any.

    Only the `main` process (rank 0) deletes anything.
    """
    run_dir = root / key
    if main and root.is_dir():
        for stale in root.iterdir():
            if stale.name not in (key, LOCK_FILE):
                shutil.rmtree(stale, ignore_errors=True)
        if run_dir.is_dir():
            drop_incomplete(run_dir)
    done = complete_checkpoints(run_dir) if run_dir.is_dir() else []
    return run_dir, (done[-1] if done else None)


def restore_live(run_dir: Path, checkpoint: Path | None, main: bool) -> Path:
    """The working DVCLive folder, rewound to the checkpoint's snapshot when resuming (by `main` only)."""
    live = run_dir / LIVE_SNAPSHOT
    if main:
        shutil.rmtree(live, ignore_errors=True)
        if checkpoint is not None and (checkpoint / LIVE_SNAPSHOT).is_dir():
            shutil.copytree(checkpoint / LIVE_SNAPSHOT, live)
    return live


class CompleteMarker(TrainerCallback):
    """Mark a checkpoint complete once every process has written its part, then drop superseded ones.

    Rotation happens here, not in the Trainer (save_total_limit=None), so that the previous complete
    checkpoint survives until the new one is marked: a kill at any moment leaves one to resume from.
    Must be the last callback with an on_save.
    """

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # each rank writes its own RNG state file
        if not state.is_world_process_zero:
            return
        newest = checkpoint_dir(args, state)
        (newest / COMPLETE).write_text(f"{state.global_step}\n", encoding="utf-8")
        # Keep the newest (to resume) and the best (for load_best_model_at_end).
        keep = {newest.name, Path(state.best_model_checkpoint or newest).name}
        for path in complete_checkpoints(Path(str(args.output_dir))):
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
