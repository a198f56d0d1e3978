"""The stock `transformers.Trainer`, configured from the `finetune` params: model, schedule, batching.

Deterministic on CPU, and DDP-ready: the same code runs under `torchrun`, one process per GPU (NCCL) or
CPU slot (gloo).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_pt_utils import nested_gather

from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import MACRO_F1, headline
from embedforge.core.models import quiet_load_report
from embedforge.core.params import FinetuneParams
from embedforge.finetune.batches import EncodedDataset, EpochSeededLengthSampler, Split
from embedforge.finetune.callbacks import TokenProgress
from embedforge.finetune.lexical import LexicalObjective

METRIC = MACRO_F1  # model selection: the best checkpoint by validation macro-F1


class LengthGroupedTrainer(Trainer):
    """A Trainer whose training batches group similar lengths, in an order fixed by (seed, epoch), and
    that adds the joint lexical loss (`lexical`, when set) to every training batch's task loss."""

    min_mega_batch = 1  # batches per length-sorted mega-batch, at least (see EpochSeededLengthSampler)

    def __init__(self, *args: Any, lexical: LexicalObjective | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lexical = lexical
        self._lexical_logged: list[torch.Tensor] = []  # the lexical losses since the last log
        self._lexical_at = (-1, 0)  # (global step, batches of it seen so far)

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> EpochSeededLengthSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        assert isinstance(dataset, EncodedDataset)
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return EpochSeededLengthSampler(batch, dataset.split.lengths, self.args.seed, self.min_mega_batch)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        """The task loss, plus `lexical.weight` x the lexical loss on training batches (not in evaluation)."""
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.lexical is None or not model.training:
            return out
        lexical = self.lexical.loss(model, self._lexical_batch())
        self._lexical_logged.append(lexical.detach())
        if self._task_loss_scaled(num_items_in_batch):  # the Trainer will not divide by the accumulation
            lexical = lexical / self.current_gradient_accumulation_steps
        if isinstance(out, tuple):  # return_outputs
            return out[0] + self.lexical.weight * lexical, out[1]
        return out + self.lexical.weight * lexical

    def _lexical_batch(self) -> int:
        """Which batch of words this training batch takes: a function of (global step, accumulation
        batch, process), so a resumed or a DDP run draws the words an uninterrupted one would."""
        step, seen = self._lexical_at
        seen = seen if step == self.state.global_step else 0
        self._lexical_at = (self.state.global_step, seen + 1)
        batch = self.state.global_step * self.args.gradient_accumulation_steps + seen
        return batch * self.args.world_size + self.args.process_index

    def _task_loss_scaled(self, num_items_in_batch: torch.Tensor | int | None) -> bool:
        """Whether the task loss is already scaled for gradient accumulation (the Trainer's own rule)."""
        if self.loss_is_scaled_for_ga is not None:
            return bool(self.loss_is_scaled_for_ga)
        accepts = bool(self.model_accepts_loss_kwargs) and num_items_in_batch is not None
        return accepts or self.compute_loss_func is not None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Training logs also carry `lexical_loss`: the mean over every process since the last log."""
        if self.lexical is not None and "loss" in logs and self._lexical_logged:
            mean = torch.stack(self._lexical_logged).mean()
            logs["lexical_loss"] = float(nested_gather(mean, self.args.parallel_mode).mean())
            self._lexical_logged = []
        super().log(logs, start_time)


def trainer_metrics(pred: EvalPrediction) -> dict[str, float]:
    """Validation accuracy and macro-F1 (over every class of the head), for model selection."""
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    logits = np.asarray(logits)
    return headline(np.asarray(pred.label_ids), logits.argmax(-1), logits.shape[-1])


def load_model(base_dir: Path, names: list[str], p: FinetuneParams) -> PreTrainedModel:
    """The base encoder with a fresh, seeded classification head, and the requested layers frozen."""
    set_seed(p.seed)  # the head's initialisation must not depend on anything run before
    with quiet_load_report():  # the fresh head is "missing" by design; models/base was checked by `model`
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
    if not (embeddings or layers):
        return
    if blocks is None or not hasattr(base, "embeddings"):
        raise EmbedforgeError(f"params.yaml: finetune.freeze_*: no layers to freeze in {type(base).__name__}")
    frozen = ([base.embeddings] if embeddings else []) + list(blocks[:layers])
    for module in frozen:
        module.requires_grad_(False)


def schedule(p: FinetuneParams, train_rows: int, nproc: int) -> tuple[int, int, int]:
    """(total optimizer steps, eval/checkpoint interval, logging interval), as the Trainer counts steps."""
    batches = math.ceil(math.ceil(train_rows / p.batch_size) / nproc)
    per_epoch = max(math.ceil(batches / p.grad_accum_steps), 1)
    total = p.max_steps or math.ceil(p.epochs * per_epoch)
    every = min(p.eval_steps or per_epoch, total)
    # Log at a divisor of the checkpoint interval, so a resumed run logs the same averages: every 10 steps
    # at most, and often enough for about 30 points on a short run's training charts (every step below 60).
    cap = max(1, min(10, total // 30))
    logging = max(d for d in range(1, min(every, cap) + 1) if every % d == 0)
    return total, every, logging


def training_args(
    p: FinetuneParams, lr: float, run_dir: Path, train_rows: int, nproc: int, **override: object
) -> TrainingArguments:
    """Map the `finetune` params and the top-level `lr` onto TrainingArguments (`override`: extra or
    replaced arguments)."""
    total, every, logging = schedule(p, train_rows, nproc)
    on_gpu = torch.cuda.is_available()
    settings: dict[str, Any] = dict(
        output_dir=str(run_dir),
        seed=p.seed,
        learning_rate=lr,
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
    tokenizer: PreTrainedTokenizerBase,
    args: TrainingArguments,
    train: Split,
    validation: Split,
    callbacks: Sequence[TrainerCallback] = (),
    min_mega_batch: int = 1,
    lexical: LexicalObjective | None = None,
    label: str = "finetune",
) -> Trainer:
    """A length-grouped, dynamically padded Trainer with our progress bar (`min_mega_batch`: sort lengths
    within at least this many batches; 1 = transformers' rule, which does not group a small set;
    `lexical`: the joint lexical loss, None = the task loss alone; `label`: the bar's description)."""
    trainer = LengthGroupedTrainer(
        model=model,
        args=args,
        train_dataset=EncodedDataset(train),
        eval_dataset=EncodedDataset(validation),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=trainer_metrics,
        callbacks=list(callbacks),
        lexical=lexical,
    )
    trainer.min_mega_batch = min_mega_batch
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(TokenProgress(label))
    return trainer
