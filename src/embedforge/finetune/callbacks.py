"""Trainer callbacks: DVCLive logging, a progress bar with token throughput, complete-checkpoint marks."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch.distributed as dist
from dvclive import Live
from transformers import ProgressCallback, TrainerCallback

from embedforge.core.metrics import MACRO_F1

COMPLETE = "COMPLETE"  # written last into a checkpoint folder: resumption trusts only marked folders
LIVE_SNAPSHOT = "dvclive"  # the DVCLive folder as of a checkpoint, restored on resume
TRAIN_KEYS = ("loss", "learning_rate", "grad_norm")
EVAL_SKIP = ("runtime", "samples_per_second", "steps_per_second")  # timings are not reproducible


class LiveLogger(TrainerCallback):
    """Log training loss, learning rate and validation metrics to DVCLive at the global step."""

    def __init__(self, live_dir: Path, resume: bool) -> None:
        self.live_dir = live_dir
        self.resume = resume
        self.live: Live | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            # dvcyaml=None: the stage's own dvc.yaml block declares the plots, DVCLive must not edit it.
            self.live = Live(str(self.live_dir), resume=self.resume, dvcyaml=None, save_dvc_exp=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.live is None or not logs:
            return
        self.live.step = state.global_step
        for key, value in logs.items():
            if key in TRAIN_KEYS:
                self.live.log_metric(f"train/{key}", float(value))
            elif key.startswith("eval_") and not key.endswith(EVAL_SKIP):
                self.live.log_metric(f"eval/{key[len('eval_') :]}", float(value))
        self.live.make_summary()

    def on_save(self, args, state, control, **kwargs):
        if self.live is not None:
            shutil.copytree(self.live_dir, checkpoint_dir(args, state) / LIVE_SNAPSHOT, dirs_exist_ok=True)


class CompleteMarker(TrainerCallback):
    """Mark a checkpoint complete once every process has written its part, then drop superseded ones.

    Rotation happens here, not in the Trainer (save_total_limit=None), so that the previous complete
    checkpoint survives until the new one is marked: a kill at any moment leaves one to resume from.
    Must be the last callback with an on_save.
    """

    def on_save(self, args, state, control, **kwargs):
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # each rank writes its own RNG state file
        if not state.is_world_process_zero:
            return
        newest = checkpoint_dir(args, state)
        (newest / COMPLETE).write_text(f"{state.global_step}\n", encoding="utf-8")
        # Keep the newest (to resume) and the best (for load_best_model_at_end).
        keep = {newest.name, Path(state.best_model_checkpoint or newest).name}
        for path in complete_checkpoints(Path(args.output_dir)):
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)


class TokenProgress(ProgressCallback):
    """The stock tqdm bar (steps, it/s, ETA) plus real-token throughput and loss, without printed dicts."""

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        if self.training_bar is not None:
            self.training_bar.set_description("finetune")
            self.training_bar.update(state.global_step)  # a resumed run starts part-way
        self.current_step = state.global_step
        self._start = (time.perf_counter(), state.num_input_tokens_seen)
        self._postfix: dict[str, str] = {}

    def on_step_end(self, args, state, control, **kwargs):
        super().on_step_end(args, state, control, **kwargs)
        if self.training_bar is not None:
            seconds = time.perf_counter() - self._start[0]
            tokens = state.num_input_tokens_seen - self._start[1]
            self._postfix["tok/s"] = f"{tokens / max(seconds, 1e-9):,.0f}"
            self.training_bar.set_postfix(self._postfix, refresh=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is None or not logs:
            return
        for key, name in (("loss", "loss"), (f"eval_{MACRO_F1}", "val_f1")):
            if key in logs:
                self._postfix[name] = f"{logs[key]:.4g}"
        self.training_bar.set_postfix(self._postfix)


def checkpoint_dir(args, state) -> Path:
    """The folder the Trainer has just saved a checkpoint to."""
    return Path(args.output_dir) / f"checkpoint-{state.global_step}"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints carrying the COMPLETE mark, oldest first."""
    found = [p for p in run_dir.glob("checkpoint-*") if (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def drop_incomplete(run_dir: Path) -> None:
    """Delete checkpoint folders a kill interrupted while they were being written."""
    for path in run_dir.glob("checkpoint-*"):
        if not (path / COMPLETE).is_file():
            shutil.rmtree(path, ignore_errors=True)
