"""Stage `finetune`: the base encoder fine-tuned as a sequence classifier with `transformers.Trainer`.

Resumable (complete checkpoints keyed by a hash of params + data + base model), deterministic on CPU,
DDP-ready (the same code runs under `torchrun`), and one run at a time per checkpoint folder.
Modules: `launch` (processes), `batches` (the encoded splits), `trainer` (the Trainer and its settings),
`callbacks` (logging, progress, divergence), `checkpoints` (keys, complete marks, resume, the lock).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

from embedforge.core.encoder import model_depth
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, write_json
from embedforge.core.metrics import ACCURACY, MACRO_F1
from embedforge.core.params import FinetuneParams
from embedforge.core.prepared import PreparedData
from embedforge.finetune.batches import load_encoded_split
from embedforge.finetune.callbacks import LiveLogger, StopOnNonFinite
from embedforge.finetune.checkpoints import (
    CompleteMarker,
    checkpoint_step,
    prepare_run_dir,
    restore_live,
    run_key,
)
from embedforge.finetune.launch import check_run, check_world_fill, is_main_process, run_lock, world_size
from embedforge.finetune.lexical import LexicalObjective, LexicalSource
from embedforge.finetune.trainer import build_trainer, check_freeze, load_model, training_args

__all__ = ["best_metrics", "finetune", "save_outputs"]

logger = logging.getLogger(__name__)


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
    tokenizer: PreTrainedTokenizerBase,
    names: list[str],
    out_dir: Path,
    metrics_path: Path,
    live_src: Path,
    live_dir: Path,
) -> dict:
    """Write the model folder, the DVCLive folder and the metrics, each atomically."""
    metrics = best_metrics(trainer)
    model = trainer.model
    assert isinstance(model, PreTrainedModel)  # the best checkpoint, loaded back at the end of training
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp)  # safetensors + config.json with id2label
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
    *,
    lr: float,
    callbacks: Sequence[TrainerCallback] = (),
    lexical: LexicalSource | None = None,
) -> dict:
    """Train, select on validation macro-F1, write outputs; returns the metrics plus `resumed_from` step.

    `lr`: the learning rate (params.yaml's top-level `lr`; no default, so a caller cannot train at
    another rate than the one its run key records).

    `lexical`: the words and pooling of the joint lexical loss (`LexicalSource.from_params`), required
    when `p.lexical_weight` > 0 and ignored when it is 0."""
    check_run(p)
    if p.lexical_weight and lexical is None:
        raise ValueError("finetune.lexical_weight > 0 needs its LexicalSource")
    lexical = lexical if p.lexical_weight else None
    names = prepared.label_names()
    train, validation = (load_encoded_split(prepared, s, len(names)) for s in ("train", "validation"))
    nproc = world_size()
    check_world_fill(len(train), len(validation), nproc, p.batch_size, prepared)
    check_freeze(base_dir, p)
    if lexical is not None:
        lexical.group(model_depth(base_dir))  # extract.layers must make one matrix: say so before loading
    with run_lock(checkpoint_root):  # a second run at once would delete or resume this one's checkpoints
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = load_model(base_dir, names, p)
        objective = None
        if lexical is not None:
            objective = LexicalObjective.build(lexical, p, tokenizer, model_depth(base_dir))
            logger.info(
                "joint lexical loss: %d dictionary words, weight %g", len(objective.items), p.lexical_weight
            )
        extra = lexical.key() if lexical is not None else None
        key = run_key(p, lr, [*prepared.files("train", "validation"), base_dir], nproc, extra)
        args = training_args(p, lr, checkpoint_root / key, len(train), nproc)  # sets up the process group
        run_dir, resume = prepare_run_dir(checkpoint_root, key, main=is_main_process())
        live = restore_live(run_dir, resume, main=is_main_process())
        diverged = StopOnNonFinite()
        own = [diverged, LiveLogger(live, resume=resume is not None), CompleteMarker()]
        trainer = build_trainer(
            model, tokenizer, args, train, validation, [*own, *callbacks], lexical=objective
        )
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        if diverged.error:
            if is_main_process():  # its checkpoints would only diverge again on resume
                shutil.rmtree(run_dir, ignore_errors=True)
            raise EmbedforgeError(diverged.error)
        if not trainer.is_world_process_zero():
            return {}
        metrics = save_outputs(trainer, tokenizer, names, out_dir, metrics_path, live, live_dir)
        shutil.rmtree(run_dir, ignore_errors=True)  # outputs are safe; the checkpoints are spent
    return {**metrics, "resumed_from": checkpoint_step(resume) if resume else 0}
