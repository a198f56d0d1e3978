"""Fine-tuning throughput: this stage's batching vs. padding to the max length vs. stock Trainer defaults.

Real (non-pad) tokens per second and the achieved fraction of this machine's fp32 matmul peak, measured
in the same run. Writes bench/results/finetune_throughput.{md,json}.

    python bench/finetune_throughput.py                    # default data and model, 50 timed batches/mode
    python bench/finetune_throughput.py --max-batches 5    # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from peak import matmul_peak  # bench/peak.py: bench/ is on sys.path when run as a script
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from embedforge.core.params import DEFAULT_LR, FinetuneParams
from embedforge.core.prepared import PreparedData
from embedforge.finetune.batches import EncodedDataset, Split, load_encoded_split
from embedforge.finetune.trainer import build_trainer, load_model, training_args

MODES = ("stage", "naive", "trainer-defaults")


class CountingCollator:
    """Wraps a collator and records each batch's real tokens, padded tokens and sum of squared lengths."""

    def __init__(self, inner: DataCollatorWithPadding) -> None:
        self.inner = inner
        self.batches: list[tuple[int, int, int]] = []

    def __call__(self, features: list[dict]) -> dict:
        batch = self.inner(features)
        lengths = batch["attention_mask"].sum(1)
        self.batches.append((int(lengths.sum()), batch["input_ids"].numel(), int((lengths**2).sum())))
        return batch


class StepClock(TrainerCallback):
    """Wall-clock time at the end of every optimizer step."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.ends.append(time.perf_counter())


def flops_per_sequence(model: PreTrainedModel) -> tuple[int, int]:
    """(matmul FLOPs per real token, attention FLOPs per squared length) for forward + backward."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    cfg = model.config
    # 2 matmuls (QK^T, AV) x 2 FLOPs x hidden per layer, x3 for forward + backward.
    return 6 * linear, 12 * cfg.hidden_size * cfg.num_hidden_layers


def make_trainer(
    mode: str,
    p: FinetuneParams,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Split,
    steps: int,
    tmp: str,
) -> Trainer:
    """A Trainer for `mode` running `steps` steps, with no evaluation, checkpointing or progress bar."""
    dataset = EncodedDataset(train)
    if mode == "trainer-defaults":  # batch 8, random order, pad to the longest in the batch
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=steps,
            use_cpu=not torch.cuda.is_available(),
            report_to="none",
            disable_tqdm=True,  # display only; no effect on speed
        )
        return Trainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    quiet = dict(max_steps=steps, eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
    if mode == "stage":
        return build_trainer(
            model, tokenizer, training_args(p, DEFAULT_LR, Path(tmp), len(train), 1, **quiet), train, train
        )
    # naive: the stage's settings, but random order and every batch padded to the longest sequence
    args = training_args(p, DEFAULT_LR, Path(tmp), len(train), 1, train_sampling_strategy="random", **quiet)
    collator = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max(train.lengths))
    return Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)


def measure(mode: str, p: FinetuneParams, base: Path, prepared: Path, batches: int, warmup: int) -> dict:
    """Train `warmup + batches` steps in `mode`; throughput over the last `batches` steps."""
    data = PreparedData(prepared)
    names = data.label_names()
    train = load_encoded_split(data, "train", len(names))
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_model(base, names, p)
    per_token, per_len2 = flops_per_sequence(model)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(mode, p, model, tokenizer, train, warmup + batches, tmp)
        counter, clock = CountingCollator(trainer.data_collator), StepClock()
        trainer.data_collator = counter
        trainer.add_callback(clock)
        trainer.train()
    timed = counter.batches[warmup : warmup + batches]
    seconds = clock.ends[warmup + batches - 1] - clock.ends[warmup - 1]
    real, padded, len2 = (sum(b[i] for b in timed) for i in range(3))
    return {
        "mode": mode,
        "batch_size": trainer.args.per_device_train_batch_size,
        "batches": batches,
        "seconds": seconds,
        "real_tokens_per_s": real / seconds,
        "pad_fraction": 1 - real / padded,
        "real_gflops": (per_token * real + per_len2 * len2) / seconds / 1e9,
    }


def table(rows: list[dict], peak: float) -> str:
    """The results as a Markdown table."""
    naive = next((r["real_tokens_per_s"] for r in rows if r["mode"] == "naive"), None)
    lines = [
        "| mode | batch | timed batches | real tokens/s | padding | real GFLOP/s | % of peak | vs naive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speedup = f"{r['real_tokens_per_s'] / naive:.2f}x" if naive else "-"
        lines.append(
            f"| {r['mode']} | {r['batch_size']} | {r['batches']} | {r['real_tokens_per_s']:,.0f} | "
            f"{r['pad_fraction']:.0%} | {r['real_gflops']:.1f} | {r['real_gflops'] / peak:.0%} | {speedup} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, run every mode, print and save the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/base"))
    ap.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    ap.add_argument("--max-batches", type=int, default=50, help="timed optimizer steps per mode")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--out", type=Path, default=Path("bench/results/finetune_throughput"))
    a = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    p = FinetuneParams()
    peak = matmul_peak()
    rows = [measure(m, p, a.model, a.prepared, a.max_batches, a.warmup) for m in a.modes]
    peak = max(peak, matmul_peak())  # once more after the runs: the machine may have been busy
    header = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; fp32 matmul peak {peak:.1f} GFLOP/s\n\n"
    )
    text = header + table(rows, peak)
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".md").write_text(text, encoding="utf-8")
    a.out.with_suffix(".json").write_text(json.dumps({"peak_gflops": peak, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
