"""The `finetune` stage on the tiny model: outputs, determinism, freezing, resume after SIGKILL, the run
lock, a diverging loss, bad input.

Data: the conftest `prepared_dir` (56 train / 12 validation rows), so batch 8 gives 7 steps per epoch.
Stage runs are in-process; only SIGKILL and torchrun start processes (marked slow).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, EvalPrediction, TrainerCallback

from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import ACCURACY, MACRO_F1
from embedforge.core.params import FinetuneParams, load_params
from embedforge.core.prepared import PreparedData
from embedforge.finetune import finetune
from embedforge.finetune.checkpoints import LOCK_FILE, checkpoint_lock, run_key
from embedforge.finetune.launch import check_run, requested_nproc
from embedforge.finetune.trainer import schedule, trainer_metrics

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "stages" / "finetune.py"
OUTPUTS = ("models/finetuned", "metrics/finetune.json", "dvclive")
CHECKPOINTS = "checkpoints/finetune"
TINY_PARAMS = {
    "batch_size": 8,
    "epochs": 2.0,
    "max_steps": 0,
    "eval_steps": 0,
    "warmup_ratio": 0.1,
    "seed": 7,
}
TINY_LR = 1e-3  # params.yaml's top-level `lr`
# The reference run: 3 epochs of 7 steps, evaluated and checkpointed every 4 steps.
REFERENCE = {"epochs": 3.0, "eval_steps": 4}


def make_workspace(root: Path, model_dir: Path, prepared: Path, **finetune: object) -> Path:
    """A folder laid out like the repository: models/base, data/prepared, params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, root / "models" / "base")
    shutil.copytree(prepared, root / "data" / "prepared")
    write_params(root, **finetune)
    return root


def write_params(root: Path, **finetune: object) -> None:
    """params.yaml with the tiny defaults overridden by `finetune` (`lr`: the top-level key)."""
    params = {"lr": finetune.pop("lr", TINY_LR), "finetune": {**TINY_PARAMS, **finetune}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def finetune_in(ws: Path, callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """The library call the stage makes, on the folders of `ws`."""
    params = load_params(ws / "params.yaml")
    return finetune(
        params.finetune,
        ws / "models/base",
        PreparedData(ws / "data/prepared"),
        ws / "models/finetuned",
        ws / "metrics/finetune.json",
        ws / "dvclive",
        ws / CHECKPOINTS,
        callbacks=callbacks,
        lr=params.lr,
    )


def subprocess_env() -> dict[str, str]:
    """Environment for child interpreters: offline, one thread each."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def workspace(tmp_path: Path, tiny_model_dir: Path, prepared_dir: Path) -> Path:
    """A fresh repository-like folder for one stage run."""
    return make_workspace(tmp_path / "ws", tiny_model_dir, prepared_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, prepared_dir: Path) -> Path:
    """One uninterrupted run with the REFERENCE params."""
    ws = make_workspace(tmp_path_factory.mktemp("ref") / "ws", tiny_model_dir, prepared_dir, **REFERENCE)
    threads = torch.get_num_threads()  # module fixtures start before the function-scoped one_thread
    torch.set_num_threads(1)
    try:
        finetune_in(ws)
    finally:
        torch.set_num_threads(threads)
    return ws


def test_writes_model_metrics_and_dvclive(reference: Path) -> None:
    out = reference / "models" / "finetuned"
    names = PreparedData(reference / "data/prepared").label_names()
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == dict(enumerate(names))
    assert json.loads((out / "labels.json").read_text()) == {"names": names}
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    tok = AutoTokenizer.from_pretrained(out)
    assert model(**tok(["很好吃"], return_tensors="pt")).logits.shape == (1, len(names))
    metrics = json.loads((reference / "metrics/finetune.json").read_text())
    assert set(metrics) == {ACCURACY, MACRO_F1, "loss", "best_step", "steps", "epochs"}
    assert metrics["steps"] == 21 and metrics["best_step"] in {4, 8, 12, 16, 20, 21}
    live = reference / "dvclive"
    assert json.loads((live / "metrics.json").read_text())["step"] == 21
    for name in ("train/loss", "train/learning_rate", f"eval/{MACRO_F1}", f"eval/{ACCURACY}", "eval/loss"):
        assert (live / "plots" / "metrics" / f"{name}.tsv").is_file()
    evals = (live / f"plots/metrics/eval/{MACRO_F1}.tsv").read_text().split()
    assert evals[:2] == ["step", MACRO_F1] and evals[2::2] == ["4", "8", "12", "16", "20", "21"]
    # The spent checkpoints are removed; the lock file stays (see checkpoint_lock) and is free again.
    assert [p.name for p in (reference / CHECKPOINTS).iterdir()] == [LOCK_FILE]
    with checkpoint_lock(reference / CHECKPOINTS):
        pass


def test_learning_rate_warms_up_then_decays(reference: Path) -> None:
    rows = (reference / "dvclive/plots/metrics/train/learning_rate.tsv").read_text().split("\n")[1:]
    logged = {int(r.split("\t")[0]): float(r.split("\t")[1]) for r in rows if r}
    total, warmup = 21, 3  # warmup_ratio 0.1 of 21 steps, rounded up
    # The rate logged at step s is the one step s used: linear warm-up to 1e-3, then linear decay to 0.
    for step, lr in logged.items():
        k = step - 1
        assert lr == pytest.approx(1e-3 * min(k / warmup, (total - k) / (total - warmup))), step
    assert sorted(logged) == list(range(1, total + 1))  # a 21-step run logs every step (about 30 points)


def test_stage_same_seed_same_bytes_and_progress_bar(
    reference: Path, tmp_path: Path, tiny_model_dir: Path, prepared_dir: Path, run_stage
) -> None:
    ws = make_workspace(tmp_path / "ws", tiny_model_dir, prepared_dir, **REFERENCE)
    code, err = run_stage(ws, "finetune")
    assert code == 0, err[-2000:]
    for name in ("metrics/finetune.json", "models/finetuned/model.safetensors"):
        assert (ws / name).read_bytes() == (reference / name).read_bytes(), name
    assert "tok/s" in err and f"val_{MACRO_F1}=" in err


def test_freeze_embeddings_and_lowest_layer(workspace: Path, run_stage) -> None:
    write_params(workspace, max_steps=3, freeze_embeddings=True, freeze_layers=1)
    code, err = run_stage(workspace, "finetune")
    assert code == 0, err[-2000:]
    base = load_file(workspace / "models/base/model.safetensors")
    tuned = load_file(workspace / "models/finetuned/model.safetensors")
    for key, value in base.items():
        if key.startswith("pooler"):
            continue
        frozen = key.startswith("embeddings.") or key.startswith("encoder.layer.0.")
        assert torch.equal(tuned[f"bert.{key}"], value) == frozen, key


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from transformers import TrainerCallback
    from embedforge.core.params import load_params
    from embedforge.core.prepared import PreparedData
    from embedforge.finetune import finetune

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == int(sys.argv[1]):
                os.kill(os.getpid(), signal.SIGKILL)

    params = load_params()
    finetune(params.finetune, Path("models/base"), PreparedData(Path("data/prepared")),
             Path("models/finetuned"), Path("metrics/finetune.json"), Path("dvclive"),
             Path("checkpoints/finetune"), lr=params.lr, callbacks=[Kill()])
    """
)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(
    reference: Path, tmp_path: Path, tiny_model_dir: Path, prepared_dir: Path
) -> None:
    ws = make_workspace(tmp_path / "ws", tiny_model_dir, prepared_dir, **REFERENCE)
    # Step 10 lies in the second epoch, two steps after the complete checkpoint-8.
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "10"], cwd=ws, env=subprocess_env(), capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not any((ws / o).exists() for o in OUTPUTS)
    (run_dir,) = (p for p in (ws / CHECKPOINTS).iterdir() if p.name != LOCK_FILE)
    kept = sorted(p.name for p in run_dir.glob("checkpoint-*"))
    assert kept[-1] == "checkpoint-8" and set(kept) <= {"checkpoint-4", "checkpoint-8"}  # newest + best
    half = run_dir / "checkpoint-9"  # as if the kill had hit while a checkpoint was being written
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"truncated")

    result = finetune_in(ws)  # also proves the killed run's lock died with it
    assert result["resumed_from"] == 8
    for name in ("metrics/finetune.json", "models/finetuned/model.safetensors"):
        assert (ws / name).read_bytes() == (reference / name).read_bytes(), name
    for name in ("train/loss", f"eval/{MACRO_F1}", "eval/loss"):
        tsv = f"dvclive/plots/metrics/{name}.tsv"
        assert (ws / tsv).read_text() == (reference / tsv).read_text(), name


@pytest.mark.parametrize("distributed", ["off", "ddp"])
def test_second_run_refused_while_the_lock_is_held(workspace: Path, run_stage, distributed: str) -> None:
    write_params(workspace, distributed=distributed, nproc_per_node=2)
    root = workspace / CHECKPOINTS
    stale = root / "0123456789abcdef" / "checkpoint-4"  # the other run's work, which must survive
    stale.mkdir(parents=True)
    with open(root / LOCK_FILE, "w") as held:  # another run, as far as flock can tell
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(f"{os.getpid()}\n")
        held.flush()
        code, err = run_stage(workspace, "finetune")
    assert code == 1
    line = err.strip()
    assert "\n" not in line and f"{CHECKPOINTS}/{LOCK_FILE}: locked by pid {os.getpid()}" in line, line
    assert stale.is_dir()
    assert not any((workspace / o).exists() for o in OUTPUTS)


def test_diverging_loss_stops_with_one_line_and_keeps_old_outputs(workspace: Path, run_stage) -> None:
    # Checkpoint at step 2 (warm-up keeps step 1 at lr 0); the loss blows up right after.
    write_params(workspace, lr=1e30, max_steps=8, eval_steps=2)
    old = {"models/finetuned/model.safetensors": b"old", "metrics/finetune.json": b"{}", "dvclive/x": b"old"}
    for name, data in old.items():
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_bytes(data)
    code, err = run_stage(workspace, "finetune")
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: finetune: training ") and "lower lr (now 1e+30)" in line, line
    assert " became nan at step " in line or " became inf at step " in line, line
    assert {n: (workspace / n).read_bytes() for n in old} == old
    assert not list(workspace.glob("models/finetuned/*.json")) and not (workspace / "dvclive/plots").exists()
    # Nothing of the diverged run is left to resume from.
    assert [p.name for p in (workspace / CHECKPOINTS).iterdir()] == [LOCK_FILE]


def test_macro_f1_and_accuracy() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [-1.0, 1.0]])
    got = trainer_metrics(EvalPrediction(predictions=logits, label_ids=np.array([0, 0, 1, 1])))
    assert got == pytest.approx({ACCURACY: 0.75, MACRO_F1: (2 / 3 + 4 / 5) / 2})


def test_checkpoints_keyed_on_params_and_data(
    prepared_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    p = FinetuneParams()
    train = PreparedData(prepared_dir).split_path("train")
    inputs = [train, tiny_model_dir]
    key = run_key(p, 1e-4, inputs, 1)
    assert run_key(p, 1e-4, inputs, 1) == key
    assert run_key(p, 2e-5, inputs, 1) != key
    assert run_key(dataclasses.replace(p, seed=7), 1e-4, inputs, 1) != key
    assert run_key(p, 1e-4, inputs, 2) != key
    changed = tmp_path / train.name
    pq.write_table(pq.read_table(train).slice(1), changed)
    assert run_key(p, 1e-4, [changed, tiny_model_dir], 1) != key


def test_ddp_selected_by_params_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    p = FinetuneParams()
    monkeypatch.delenv("EMBEDFORGE_NPROC", raising=False)
    assert requested_nproc(p) == 1
    assert requested_nproc(dataclasses.replace(p, distributed="ddp", nproc_per_node=3)) == 3
    monkeypatch.setenv("EMBEDFORGE_NPROC", "4")
    assert requested_nproc(p) == 4
    assert requested_nproc(dataclasses.replace(p, distributed="off")) == 1
    monkeypatch.setenv("EMBEDFORGE_NPROC", "two")
    with pytest.raises(EmbedforgeError, match="EMBEDFORGE_NPROC = 'two'"):
        requested_nproc(p)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(EmbedforgeError, match="distributed = 'off' but launched with WORLD_SIZE=2"):
        check_run(dataclasses.replace(p, distributed="off"))


@pytest.mark.slow
def test_torchrun_two_cpu_processes(workspace: Path) -> None:
    # The launcher holds the checkpoint lock for its workers: rank 0 must not try to take it again.
    write_params(workspace, max_steps=4, eval_steps=2, distributed="ddp", nproc_per_node=2)
    done = subprocess.run(
        [sys.executable, str(STAGE)], cwd=workspace, env=subprocess_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model = AutoModelForSequenceClassification.from_pretrained(workspace / "models/finetuned")
    assert model.num_labels == 2
    metrics = json.loads((workspace / "metrics/finetune.json").read_text())
    assert metrics["steps"] == 4


def _drop_validation(ws: Path) -> None:
    PreparedData(ws / "data/prepared").split_path("validation").unlink()


def _bad_label(ws: Path) -> None:
    path = PreparedData(ws / "data/prepared").split_path("train")
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[3] = 5
    column = table.schema.get_field_index("label")
    pq.write_table(table.set_column(column, "label", pa.array(labels, pa.int64())), path)


BAD = {
    "missing split": (_drop_validation, {}, "validation.parquet: file not found"),
    "label out of range": (_bad_label, {}, "train.parquet row 3: label id 5 is outside"),
    "lr zero": (None, {"lr": 0.0}, "params.yaml: lr = 0.0 is out of range; expected > 0.0"),
    "lr negative": (None, {"lr": -1e-5}, "params.yaml: lr = -1e-05 is out of range"),
    "batch size zero": (None, {"batch_size": 0}, "finetune.batch_size = 0 is out of range; expected >= 1"),
    "world size": (None, {"distributed": "ddp", "nproc_per_node": 8}, "cannot fill world size 8"),
    "bf16 on cpu": (None, {"precision": "bf16"}, "needs a CUDA GPU"),
    "freeze too deep": (None, {"freeze_layers": 3}, "finetune.freeze_layers = 3 is out of range"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_one_line_error_no_output(case: str, workspace: Path, run_stage) -> None:
    if torch.cuda.is_available() and case == "bf16 on cpu":
        pytest.skip("bf16 is allowed on a GPU")
    corrupt, params, message = BAD[case]
    if corrupt:
        corrupt(workspace)
    write_params(workspace, **params)
    code, err = run_stage(workspace, "finetune")
    assert code == 1
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not any((workspace / o).exists() for o in OUTPUTS)
    assert not list(workspace.glob(f"{CHECKPOINTS}/*/checkpoint-*"))


@pytest.mark.parametrize(
    ("max_steps", "eval_steps", "logging"),
    [(300, 100, 10), (8, 8, 1), (45, 15, 1), (90, 30, 3), (120, 50, 2)],
)
def test_short_runs_log_often_enough_for_a_training_chart(
    max_steps: int, eval_steps: int, logging: int
) -> None:
    """At most every 10 steps; on short runs about 30 points, always a divisor of the checkpoint interval."""
    p = FinetuneParams(max_steps=max_steps, eval_steps=eval_steps)
    total, every, got = schedule(p, train_rows=10_000, nproc=1)
    assert (total, every, got) == (max_steps, eval_steps, logging)
    assert every % got == 0 and (total // got >= 8 or got == 1)
