"""The joint lexical loss of `finetune` (finetune.lexical_weight, Mirror-BERT beside the task loss) on the
tiny model: off is today's training, on changes the weights deterministically and logs a finite loss, the
words leave out every benchmark word, the pooling is extract's decontext pooling, bad values are one line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

from embedforge.core.encoder import AloneSettings, Encoder, layer_groups
from embedforge.core.params import FinetuneParams, Params, lexical_exclude_files, load_params
from embedforge.core.prepared import PreparedData
from embedforge.extract.source import encode_alone
from embedforge.finetune import finetune
from embedforge.finetune.lexical import LexicalObjective, LexicalSource, dictionary_words
from embedforge.fingerprint import stage_fingerprints

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]

TEMPLATE = "这个词是“{w}”。"
SIM = "bench.tsv"  # the workspace's one benchmark file: its words must never be trained on
# 56 train rows, batch 8: 7 steps per epoch; 2 epochs, evaluated once per epoch
FINETUNE = {"batch_size": 8, "epochs": 2.0, "eval_steps": 0, "seed": 7}
LR = 1e-3  # params.yaml's top-level `lr`
LEXICAL = {"lexical_weight": 0.5, "lexical_words": 200, "lexical_batch": 8}
EXTRACT = {"template": TEMPLATE, "positions": "all", "layers": [1, 2], "extra_words": [SIM]}


def top_words(n: int) -> list[str]:
    return sorted(dictionary_words(n, set(), seed=0))


def write_params(ws: Path, finetune: dict, extract: dict | None = None, language: str = "zh") -> None:
    params = {
        "lr": LR,
        "prepare": {"language": language},
        "finetune": {**FINETUNE, **finetune},
        "extract": {**EXTRACT, **(extract or {})},
        "evaluate": {"similarity_files": [SIM], "analogy_files": [], "selection_set": None},
    }
    (ws / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


@pytest.fixture()
def workspace(tmp_path: Path, tiny_model_dir: Path, prepared_dir: Path) -> Path:
    """models/base, data/prepared and a benchmark file holding two of jieba's most frequent words."""
    ws = tmp_path / "ws"
    shutil.copytree(tiny_model_dir, ws / "models" / "base")
    shutil.copytree(prepared_dir, ws / "data" / "prepared")
    a, b = top_words(20)[:2]
    (ws / SIM).write_text(f"word1\tword2\tscore\n{a}\t{b}\t5.0\n", encoding="utf-8")
    write_params(ws, {})
    return ws


def train(
    ws: Path, out: str, callbacks: Sequence[TrainerCallback] = (), **finetune_keys: object
) -> tuple[Path, dict]:
    """The stage's library call with `finetune_keys` set; returns the model folder and its result."""
    write_params(ws, finetune_keys)
    params = load_params(ws / "params.yaml")
    result = finetune(
        params.finetune,
        ws / "models/base",
        PreparedData(ws / "data/prepared"),
        ws / out,
        ws / f"{out}.json",
        ws / f"{out}-live",
        ws / "checkpoints",
        callbacks=callbacks,
        lexical=LexicalSource.from_params(params, ws),
        lr=params.lr,
    )
    return ws / out, result


class Crash(TrainerCallback):
    """Fail the run at one step (after the checkpoint before it is complete)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise RuntimeError("crash")


def weights(folder: Path) -> bytes:
    return (folder / "model.safetensors").read_bytes()


def test_weight_zero_is_todays_training_and_weight_on_changes_it_deterministically(workspace: Path) -> None:
    plain, _ = train(workspace, "plain")
    zero, _ = train(workspace, "zero", lexical_weight=0.0, lexical_words=200, lexical_batch=8)
    off = load_params(workspace / "params.yaml")
    assert LexicalSource.from_params(off, workspace) is None  # off: nothing is read or built
    assert weights(zero) == weights(plain)
    joint, _ = train(workspace, "joint", **LEXICAL)
    again, _ = train(workspace, "again", **LEXICAL)
    assert weights(joint) != weights(plain)
    assert weights(again) == weights(joint)  # seeded on the CPU: the same bytes
    rows = (workspace / "joint-live/plots/metrics/train/lexical_loss.tsv").read_text().split("\n")[1:]
    losses = [float(r.split("\t")[1]) for r in rows if r]
    assert len(losses) >= 2 and all(math.isfinite(x) and x > 0 for x in losses)
    assert not (workspace / "plain-live/plots/metrics/train/lexical_loss.tsv").exists()


def test_words_are_seeded_dictionary_words_without_any_benchmark_word(workspace: Path) -> None:
    params = load_params(workspace / "params.yaml")
    params = dataclasses.replace(params, finetune=dataclasses.replace(params.finetune, **LEXICAL))
    source = LexicalSource.from_params(params, workspace)
    assert source is not None
    banned = set(top_words(20)[:2])
    assert len(source.words) == 200 and not banned & set(source.words)
    assert set(source.words) <= set(dictionary_words(202, set(), seed=0))
    assert dictionary_words(50, banned, seed=1) == dictionary_words(50, banned, seed=1)
    assert dictionary_words(50, banned, seed=1) != dictionary_words(50, banned, seed=2)
    assert source.settings == AloneSettings(TEMPLATE, "all") and source.layers == [1, 2]


def test_a_resumed_run_draws_the_same_words_and_ends_with_the_same_bytes(workspace: Path) -> None:
    keys = {**LEXICAL, "eval_steps": 4}  # 14 steps, checkpoints at 4, 8, 12, 14
    full, _ = train(workspace, "full", **keys)
    with pytest.raises(RuntimeError, match="crash"):
        train(workspace, "resumed", [Crash(10)], **keys)
    resumed, result = train(workspace, "resumed", **keys)
    assert result["resumed_from"] == 8
    assert weights(resumed) == weights(full)
    tsv = "plots/metrics/train/lexical_loss.tsv"
    assert (workspace / f"resumed-live/{tsv}").read_text() == (workspace / f"full-live/{tsv}").read_text()


@pytest.mark.parametrize("positions", ["all", "word"])
def test_the_loss_pools_words_as_extract_pools_the_decontext_matrix(
    positions: str, tiny_model_dir: Path
) -> None:
    words = ["好吃", "味道", "外卖送餐"]
    settings = AloneSettings(TEMPLATE, positions)  # type: ignore[arg-type]
    source = LexicalSource(words, settings, [1, 2], "mean")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    p = FinetuneParams(lexical_weight=1.0, lexical_batch=2)
    objective = LexicalObjective.build(source, p, tokenizer, depth=2)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).eval()
    with torch.no_grad():
        trained = objective.vectors(model, objective.items)
    encoder = Encoder(tiny_model_dir)
    extracted = encode_alone(encoder, words, layer_groups([1, 2], 2), "mean", 8192, settings).pooled[0]
    torch.testing.assert_close(trained, extracted)


BAD = {
    "negative weight": ({"lexical_weight": -0.1}, {}, "zh", "finetune.lexical_weight = -0.1 is out of range"),
    "batch of one": ({**LEXICAL, "lexical_batch": 1}, {}, "zh", "finetune.lexical_batch = 1 is out of range"),
    "zero temperature": (
        {**LEXICAL, "lexical_temperature": 0.0},
        {},
        "zh",
        "finetune.lexical_temperature = 0.0 is out of range; expected > 0.0",
    ),
    "batch above words": (
        {**LEXICAL, "lexical_words": 4},
        {},
        "zh",
        "finetune.lexical_batch = 8 is more than the 4 dictionary words",
    ),
    "layers all": (LEXICAL, {"layers": "all"}, "zh", "extract.layers = 'all' makes 3 matrices"),
    "layer too deep": (LEXICAL, {"layers": 5}, "zh", "extract.layers = 5 is beyond the depth"),
    "english": (LEXICAL, {"template": None}, "en", "needs prepare.language = 'zh'"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_values_one_line_error_no_output(case: str, workspace: Path, run_stage) -> None:
    finetune_keys, extract, language, message = BAD[case]
    write_params(workspace, finetune_keys, extract, language)
    code, err = run_stage(workspace, "finetune")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (workspace / "models/finetuned").exists() and not (workspace / "metrics").exists()


def test_a_source_is_required_when_the_loss_is_on(workspace: Path) -> None:
    write_params(workspace, LEXICAL)
    p = load_params(workspace / "params.yaml").finetune
    outputs = [workspace / x for x in ("out", "metrics.json", "live", "checkpoints")]
    with pytest.raises(ValueError, match="needs its LexicalSource"):
        finetune(p, workspace / "models/base", PreparedData(workspace / "data/prepared"), *outputs, lr=LR)


def test_the_fingerprint_tracks_what_the_loss_reads_only_while_it_is_on() -> None:
    off = Params()
    moved = dataclasses.replace(off, extract=dataclasses.replace(off.extract, layers=[3, 4]))
    assert stage_fingerprints(off)["finetune"] == stage_fingerprints(moved)["finetune"] == {"lexical": None}
    on = dataclasses.replace(off, finetune=dataclasses.replace(off.finetune, lexical_weight=0.5))
    on_moved = dataclasses.replace(on, extract=moved.extract)
    lexical = stage_fingerprints(on)["finetune"]["lexical"]
    assert lexical["extract"]["template"] == TEMPLATE and lexical["prepare"] == {"language": "zh"}
    assert [f["path"] for f in lexical["exclude"]] == lexical_exclude_files(on)
    assert stage_fingerprints(on_moved)["finetune"]["lexical"]["extract"]["layers"] == [3, 4]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_with_the_lexical_loss(workspace: Path) -> None:
    write_params(
        workspace, {**LEXICAL, "max_steps": 4, "eval_steps": 2, "distributed": "ddp", "nproc_per_node": 2}
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "finetune.py")],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((workspace / "metrics/finetune.json").read_text())["steps"] == 4
    rows = (workspace / "dvclive/plots/metrics/train/lexical_loss.tsv").read_text().split("\n")[1:]
    losses = [float(r.split("\t")[1]) for r in rows if r]
    assert len(losses) >= 2 and all(math.isfinite(x) for x in losses)
