"""Fine-tune the base encoder as a sequence classifier with `transformers.Trainer`.

Resumable (complete checkpoints keyed by a hash of params + data + base model), deterministic on CPU,
and DDP-ready: the same code runs under `torchrun`, one process per GPU (NCCL) or CPU slot (gloo).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedModel,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, write_json
from embedforge.core.metrics import ACCURACY, MACRO_F1, headline
from embedforge.core.params import FinetuneParams
from embedforge.core.prepared import PreparedData
from embedforge.finetune.batches import (
    EncodedDataset,
    EpochSeededLengthSampler,
    Split,
    check_world_fill,
    load_split,
)
from embedforge.finetune.callbacks import (
    LIVE_SNAPSHOT,
    CompleteMarker,
    LiveLogger,
    TokenProgress,
    complete_checkpoints,
    drop_incomplete,
)

METRIC = MACRO_F1


class LengthGroupedTrainer(Trainer):
    """A Trainer whose training batches group similar lengths, in an order fixed by (seed, epoch)."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return EpochSeededLengthSampler(batch, dataset.split.lengths, self.args.seed)


def trainer_metrics(pred: EvalPrediction) -> dict[str, float]:
    """Validation accuracy and macro-F1 (over every class of the head), for model selection."""
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    logits = np.asarray(logits)
    return headline(np.asarray(pred.label_ids), logits.argmax(-1), logits.shape[-1])


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


def launch_torchrun(script: Path, nproc: int, prepared: PreparedData, p: FinetuneParams) -> int:
    """Check the data can fill `nproc` processes, then re-run `script` under torchrun; its exit code."""
    rows = [prepared.rows(s) for s in ("train", "validation")]
    check_world_fill(*rows, nproc, p.batch_size, prepared)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd.append(str(script))
    return subprocess.run(cmd, check=False).returncode


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


def file_digest(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_key(p: FinetuneParams, inputs: Sequence[Path], nproc: int) -> str:
    """Short hash naming the checkpoint folder, so a changed param, data file or model is never resumed."""
    h = hashlib.sha256(json.dumps([dataclasses.asdict(p), nproc], sort_keys=True).encode())
    for root in inputs:
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file():
                h.update(f"{path.relative_to(root.parent)}:{file_digest(path)}".encode())
    return h.hexdigest()[:16]


def load_model(base_dir: Path, names: list[str], p: FinetuneParams) -> PreTrainedModel:
    """The base encoder with a fresh, seeded classification head, and the requested layers frozen."""
    set_seed(p.seed)  # the head's initialisation must not depend on anything run before
    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    freeze(model, p.freeze_embeddings, p.freeze_layers)
    return model


def check_freeze(base_dir: Path, p: FinetuneParams) -> None:
    """Refuse to freeze more layers than the base model has, before loading any weights."""
    layers = getattr(AutoConfig.from_pretrained(base_dir), "num_hidden_layers", 0)
    if p.freeze_layers > layers:
        raise EmbedforgeError(
            f"params.yaml: finetune.freeze_layers = {p.freeze_layers} is out of range; "
            f"expected <= {layers} (the layers of {base_dir})"
        )


def freeze(model: PreTrainedModel, embeddings: bool, layers: int) -> None:
    """Stop gradients to the embedding layer and/or the lowest `layers` encoder layers."""
    base = model.base_model
    blocks = getattr(getattr(base, "encoder", None), "layer", None)
    if (embeddings or layers) and (blocks is None or not hasattr(base, "embeddings")):
        raise EmbedforgeError(f"params.yaml: finetune.freeze_*: no layers to freeze in {type(base).__name__}")
    frozen = ([base.embeddings] if embeddings else []) + list(blocks[:layers] if layers else [])
    for module in frozen:
        module.requires_grad_(False)


def schedule(p: FinetuneParams, train_rows: int, nproc: int) -> tuple[int, int, int]:
    """(total optimizer steps, eval/checkpoint interval, logging interval), as the Trainer counts steps."""
    batches = math.ceil(math.ceil(train_rows / p.batch_size) / nproc)
    per_epoch = max(math.ceil(batches / p.grad_accum_steps), 1)
    total = p.max_steps or math.ceil(p.epochs * per_epoch)
    every = min(p.eval_steps or per_epoch, total)
    # Log at a divisor of the checkpoint interval, so a resumed run logs the same averages.
    logging = max(d for d in range(1, min(every, 10) + 1) if every % d == 0)
    return total, every, logging


def training_args(
    p: FinetuneParams, run_dir: Path, train_rows: int, nproc: int, **override: object
) -> TrainingArguments:
    """Map the `finetune` params onto TrainingArguments (`override`: extra or replaced arguments)."""
    total, every, logging = schedule(p, train_rows, nproc)
    on_gpu = torch.cuda.is_available()
    settings = dict(
        output_dir=str(run_dir),
        seed=p.seed,
        learning_rate=p.lr,
        weight_decay=p.weight_decay,  # the Trainer exempts biases and LayerNorm weights
        lr_scheduler_type="linear",
        warmup_steps=p.warmup_ratio if p.warmup_ratio < 1 else total,
        max_grad_norm=p.max_grad_norm,
        per_device_train_batch_size=p.batch_size,
        per_device_eval_batch_size=p.batch_size * 2,
        gradient_accumulation_steps=p.grad_accum_steps,
        max_steps=total,
        eval_strategy="steps",
        eval_steps=every,
        save_strategy="steps",
        save_steps=every,
        save_total_limit=None,  # CompleteMarker rotates, after the new checkpoint is complete
        load_best_model_at_end=True,
        metric_for_best_model=METRIC,
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=logging,
        logging_first_step=False,
        train_sampling_strategy="group_by_length",  # also length-groups the evaluation batches
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        dataloader_pin_memory=on_gpu,
        use_cpu=not on_gpu,
        bf16=p.precision == "bf16",
        fp16=p.precision == "fp16",
        ddp_backend=("nccl" if on_gpu else "gloo") if nproc > 1 else None,  # set only under torchrun
        ddp_find_unused_parameters=False,
        report_to="none",
        disable_tqdm=False,
    )
    return TrainingArguments(**{**settings, **override})


def build_trainer(
    model: PreTrainedModel,
    tokenizer,
    args: TrainingArguments,
    train: Split,
    validation: Split,
    callbacks: Sequence[TrainerCallback] = (),
) -> Trainer:
    """A length-grouped, dynamically padded Trainer with our progress bar."""
    trainer = LengthGroupedTrainer(
        model=model,
        args=args,
        train_dataset=EncodedDataset(train),
        eval_dataset=EncodedDataset(validation),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=trainer_metrics,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(TokenProgress())
    return trainer


def prepare_run_dir(root: Path, key: str) -> tuple[Path, Path | None]:
    """The run's checkpoint folder (other keys' folders removed) and its last complete checkpoint, if any."""
    run_dir = root / key
    if is_main_process() and root.is_dir():
        for stale in root.iterdir():
            if stale.name != key:
                shutil.rmtree(stale, ignore_errors=True)
        if run_dir.is_dir():
            drop_incomplete(run_dir)
    done = complete_checkpoints(run_dir) if run_dir.is_dir() else []
    return run_dir, (done[-1] if done else None)


def restore_live(run_dir: Path, checkpoint: Path | None) -> Path:
    """The working DVCLive folder, rewound to the checkpoint's snapshot when resuming."""
    live = run_dir / LIVE_SNAPSHOT
    if is_main_process():
        shutil.rmtree(live, ignore_errors=True)
        if checkpoint is not None and (checkpoint / LIVE_SNAPSHOT).is_dir():
            shutil.copytree(checkpoint / LIVE_SNAPSHOT, live)
    return live


def best_metrics(trainer: Trainer) -> dict[str, float | int]:
    """Validation metrics of the selected (best) checkpoint, from the log history (no re-evaluation)."""
    state = trainer.state
    step = state.best_global_step or state.global_step
    evals = [e for e in state.log_history if "eval_loss" in e and e["step"] == step]
    if not evals:
        raise RuntimeError(f"no validation log for step {step}")  # the Trainer evaluates every save
    e = evals[-1]
    return {
        ACCURACY: e[f"eval_{ACCURACY}"],
        MACRO_F1: e[f"eval_{MACRO_F1}"],
        "loss": e["eval_loss"],
        "best_step": step,
        "steps": state.global_step,
        "epochs": round(float(state.epoch or 0), 4),
    }


def save_outputs(
    trainer: Trainer,
    tokenizer,
    names: list[str],
    out_dir: Path,
    metrics_path: Path,
    live_src: Path,
    live_dir: Path,
) -> dict:
    """Write the model folder, the DVCLive folder and the metrics, each atomically."""
    metrics = best_metrics(trainer)
    with atomic_path(out_dir, is_dir=True) as tmp:
        trainer.model.save_pretrained(tmp)  # safetensors + config.json with id2label
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "labels.json", {"names": names})
    with atomic_path(live_dir, is_dir=True) as tmp:
        shutil.copytree(live_src, tmp, dirs_exist_ok=True)
    write_json(metrics_path, metrics)
    return metrics


def finetune(
    p: FinetuneParams,
    base_dir: Path,
    prepared: PreparedData,
    out_dir: Path,
    metrics_path: Path,
    live_dir: Path,
    checkpoint_root: Path,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict:
    """Train, select on validation macro-F1, write outputs; returns the metrics plus `resumed_from` step."""
    check_run(p)
    names = prepared.label_names()
    train, validation = (load_split(prepared, s, len(names)) for s in ("train", "validation"))
    nproc = world_size()
    check_world_fill(len(train), len(validation), nproc, p.batch_size, prepared)
    check_freeze(base_dir, p)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = load_model(base_dir, names, p)
    inputs = [*prepared.files("train", "validation"), base_dir]
    key = run_key(p, inputs, nproc)
    args = training_args(p, checkpoint_root / key, len(train), nproc)  # sets up the process group
    run_dir, resume = prepare_run_dir(checkpoint_root, key)
    live = restore_live(run_dir, resume)
    own = [LiveLogger(live, resume=resume is not None), CompleteMarker()]
    trainer = build_trainer(model, tokenizer, args, train, validation, [*own, *callbacks])
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if not trainer.is_world_process_zero():
        return {}
    metrics = save_outputs(trainer, tokenizer, names, out_dir, metrics_path, live, live_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # outputs are safe; the checkpoints are spent
    return {**metrics, "resumed_from": int(resume.name.rsplit("-", 1)[1]) if resume else 0}
