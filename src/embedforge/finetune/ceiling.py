"""The transformer ceiling of the learning curves (stage `ceiling`): `models/base` fine-tuned on each
training subset of the curves, scored on the untouched test split.

The subsets are the curves' own draws (`embedforge.core.curves.CurvePlan` with the `curves` params, over
the same train labels), limited to the sizes up to `ceiling.max_size`; each
run is the `finetune` stage's Trainer (same model head, optimiser, length-grouped batches) with a fixed
schedule for a small training set: `ceiling.epochs` passes of `ceiling.batch_size`, but at least
`ceiling.min_steps` steps and, when `ceiling.max_steps` is set, at most that many. No checkpoint is
selected (nothing is tuned on validation or test): the model after the last step is scored. Run i of a
size uses seed `finetune.seed + i`. Writes metrics/ceiling.json, which `evaluate` reads into the curve
table after checking that its draws are the same (`draws` digests).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from embedforge.core.curves import CEILING_SIZES, DRAWS, STEPS, TRAIN_ROWS, CurvePlan, size_key, summarise
from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import headline
from embedforge.core.params import CeilingParams, FinetuneParams, Params
from embedforge.core.prepared import PreparedData
from embedforge.finetune.batches import EncodedDataset, Split, load_encoded_split
from embedforge.finetune.callbacks import StopOnNonFinite
from embedforge.finetune.trainer import build_trainer, check_freeze, load_model, training_args

logger = logging.getLogger(__name__)

# sort lengths within at least 4 batches: a subset of 100 short texts is otherwise batched at random and
# padded to its longest (measured: 1.5 s instead of ~0.9 s a step at batch 32 on 2 cores)
MEGA_BATCH = 4


def ceiling_sizes(p: Params) -> list[int]:
    """The curve sizes the ceiling runs: those > 0 and <= ceiling.max_size, ascending."""
    return sorted({n for n in p.curves.sizes if 0 < n <= p.ceiling.max_size})


def run_params(f: FinetuneParams, c: CeilingParams, rows: int, run: int) -> FinetuneParams:
    """The `finetune` params of one run: its seed, the ceiling's batch size and number of steps; every
    other `finetune` key that could matter is replaced, so a run depends on CEILING_READS alone."""
    steps = max(math.ceil(c.epochs * math.ceil(rows / c.batch_size)), c.min_steps)
    if c.max_steps:
        steps = min(steps, c.max_steps)
    return replace(
        f,
        seed=f.seed + run,
        batch_size=c.batch_size,
        grad_accum_steps=1,
        epochs=1.0,
        max_steps=steps,
        eval_steps=0,
        distributed="off",
        nproc_per_node=0,
    )


def subset(split: Split, rows: np.ndarray) -> Split:
    """The rows of a split, in the given (sorted) order."""
    return Split(
        split.path,
        [split.input_ids[i] for i in rows],
        split.labels[rows],
        [split.lengths[i] for i in rows],
    )


def fine_tune_and_test(
    base_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
    names: list[str],
    train: Split,
    test: Split,
    p: FinetuneParams,
    lr: float,
    label: str = "ceiling",
) -> dict[str, float]:
    """One run: a fresh seeded head on the base encoder, `p.max_steps` steps on `train`, scores on `test`
    (`label`: its progress bar's description)."""
    model = load_model(base_dir, names, p)
    diverged = StopOnNonFinite()
    # nothing is saved; the Trainer wants a folder
    with tempfile.TemporaryDirectory(prefix="ceiling-") as tmp:
        args = training_args(
            p,
            lr,
            Path(tmp),
            len(train),
            1,
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            metric_for_best_model=None,
        )
        trainer = build_trainer(model, tokenizer, args, train, test, [diverged], MEGA_BATCH, label=label)
        trainer.train()
        if diverged.error:
            raise EmbedforgeError(diverged.error.replace("finetune:", "ceiling:", 1))
        out = trainer.predict(EncodedDataset(test))  # in the sampler's order, labels alongside
    logits = np.asarray(out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions)
    return headline(np.asarray(out.label_ids), logits.argmax(-1), len(names))


def run_ceiling(p: Params, base_dir: Path, prepared: PreparedData) -> dict[str, dict[str, object]]:
    """metrics/ceiling.json: per size, mean ± sd test scores over the draws, rows, steps and draw digest."""
    sizes = ceiling_sizes(p)
    if not sizes:
        return {CEILING_SIZES: {}}
    check_freeze(base_dir, p.finetune)
    names = prepared.label_names()
    train, test = (load_encoded_split(prepared, s, len(names)) for s in ("train", "test"))
    plan = CurvePlan.of(train.labels, sizes, p.curves.seeds, p.curves.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    points: dict[str, object] = {}
    for n in sizes:
        key = size_key(n)
        rows_n = plan.rows()[key]  # every draw of a size has the same rows per class, so the same count
        steps = run_params(p.finetune, p.ceiling, rows_n, 0).max_steps  # a function of the count alone
        runs = []
        draws = plan.runs[key]
        for i, rows in enumerate(draws):
            run = run_params(p.finetune, p.ceiling, rows_n, i)
            start = time.perf_counter()
            label = f"ceiling {key}/class, draw {i + 1}/{len(draws)}"
            runs.append(
                fine_tune_and_test(base_dir, tokenizer, names, subset(train, rows), test, run, p.lr, label)
            )
            logger.info(
                "ceiling %s / class, draw %d: %d rows, %d steps, test macro-F1 %.4f (%.1f s)",
                key, i, rows_n, steps, runs[-1]["macro_f1"], time.perf_counter() - start,
            )  # fmt: skip
        points[key] = {
            **summarise(runs),
            TRAIN_ROWS: rows_n,
            STEPS: steps,
            DRAWS: plan.digest(key),
        }
    return {CEILING_SIZES: points}
