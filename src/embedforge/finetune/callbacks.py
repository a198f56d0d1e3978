"""Trainer callbacks: DVCLive logging, a progress bar with token throughput, a stop on a diverged loss."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

from dvclive import Live
from transformers import ProgressCallback, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from embedforge.core.metrics import MACRO_F1
from embedforge.finetune.checkpoints import LIVE_SNAPSHOT, checkpoint_dir

TRAIN_KEYS = ("loss", "learning_rate", "grad_norm", "lexical_loss")  # lexical: finetune.lexical
EVAL_SKIP = ("runtime", "samples_per_second", "steps_per_second")  # timings are not reproducible


class LiveLogger(TrainerCallback):
    """Log training loss, learning rate and validation metrics to DVCLive at the global step."""

    def __init__(self, live_dir: Path, resume: bool) -> None:
        self.live_dir = live_dir
        self.resume = resume
        self.live: Live | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero:
            # dvcyaml=None: the stage's own dvc.yaml block declares the plots, DVCLive must not edit it.
            self.live = Live(str(self.live_dir), resume=self.resume, dvcyaml=None, save_dvc_exp=False)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.live is None or not logs:
            return
        self.live.step = state.global_step
        for key, value in logs.items():
            if key in TRAIN_KEYS:
                self.live.log_metric(f"train/{key}", float(value))
            elif key.startswith("eval_") and not key.endswith(EVAL_SKIP):
                self.live.log_metric(f"eval/{key[len('eval_') :]}", float(value))
        self.live.make_summary()

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.live is not None:
            shutil.copytree(self.live_dir, checkpoint_dir(args, state) / LIVE_SNAPSHOT, dirs_exist_ok=True)


class TokenProgress(ProgressCallback):
    """The stock tqdm bar (steps, it/s, ETA) plus real-token throughput and loss, without printed dicts;
    `label` is its description (the stage, and for the ceiling which draw of which size)."""

    def __init__(self, label: str = "finetune") -> None:
        super().__init__()
        self.label = label

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        super().on_train_begin(args, state, control, **kwargs)
        if self.training_bar is not None:
            self.training_bar.set_description(self.label)
            self.training_bar.update(state.global_step)  # a resumed run starts part-way
        self.current_step = state.global_step
        self._start = (time.perf_counter(), state.num_input_tokens_seen)
        self._postfix: dict[str, str] = {}

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        super().on_step_end(args, state, control, **kwargs)
        if self.training_bar is not None:
            seconds = time.perf_counter() - self._start[0]
            tokens = state.num_input_tokens_seen - self._start[1]
            self._postfix["tok/s"] = f"{tokens / max(seconds, 1e-9):,.0f}"
            self.training_bar.set_postfix(self._postfix, refresh=False)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.training_bar is None or not logs:
            return
        for key, name in (("loss", "loss"), (f"eval_{MACRO_F1}", f"val_{MACRO_F1}")):
            if key in logs:
                self._postfix[name] = f"{logs[key]:.4g}"
        self.training_bar.set_postfix(self._postfix)


class StopOnNonFinite(TrainerCallback):
    """Stop training, without evaluating or saving, once the logged loss or gradient norm is NaN or inf.

    Training on would write a model of NaNs and metrics that are not valid JSON. The Trainer logs before it
    evaluates and checkpoints the same step, so nothing diverged is saved. The caller turns `error` into
    an EmbedforgeError after `train()` returns (the stock way out of the loop, which also closes the
    progress bar) and deletes the run's earlier checkpoints, which would only diverge again on resume.
    Must come before the callbacks that record logs.
    """

    def __init__(self) -> None:
        self.error: str | None = None

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl:
        # fp16's loss scaler skips a step with an inf gradient by design: only the loss counts there.
        keys = ("loss",) if args.fp16 else ("loss", "grad_norm")
        for key in keys:
            value = (logs or {}).get(key)
            if self.error is None and value is not None and not math.isfinite(value):
                what = "loss" if key == "loss" else "gradient norm"
                self.error = (
                    f"finetune: training {what} became {value} at step {state.global_step}; "
                    f"lower lr (now {args.learning_rate:g}) or raise finetune.warmup_ratio"
                )
                control.should_training_stop = True
                control.should_evaluate = control.should_save = False
        return control
