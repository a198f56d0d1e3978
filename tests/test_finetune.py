"""The `finetune` stage on the tiny model: outputs, determinism, freezing, resume after SIGKILL, bad input."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, EvalPrediction

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import write_json, write_parquet
from embedforge.core.params import FinetuneParams, load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.stage import run_stage
from embedforge.finetune.trainer import check_run, finetune, requested_nproc, run_key, trainer_metrics

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "stages" / "finetune.py"
OUTPUTS = ("models/finetuned", "metrics/finetune.json", "dvclive")
# Small enough that a run takes seconds: 56 train rows, batch 8 -> 7 steps per epoch.
TINY_PARAMS = {
    "batch_size": 8,
    "epochs": 2.0,
    "max_steps": 0,
    "eval_steps": 0,
    "lr": 1e-3,
    "warmup_ratio": 0.1,
    "seed": 7,
}


def build_prepared(out: Path, reviews_csv: Path, model_dir: Path, max_length: int = 64) -> Path:
    """Tokenize the fixture reviews into the prepare stage's contract: train/validation/test + labels.json."""
    df = pd.read_csv(reviews_csv).sample(frac=1.0, random_state=0).reset_index(drop=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(df["review"].astype(str).tolist(), truncation=True, max_length=max_length)["input_ids"]
    names = sorted(str(v) for v in df["label"].unique())
    table = pa.table(
        {
            "text": pa.array(df["review"].astype(str)),
            "label": pa.array([names.index(str(v)) for v in df["label"]], pa.int64()),
            "input_ids": pa.array(ids, pa.list_(pa.int32())),
            "length": pa.array([len(x) for x in ids], pa.int32()),
            "words": pa.array([list(t) for t in df["review"].astype(str)], pa.list_(pa.string())),
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, (lo, hi) in {"train": (0, 56), "validation": (56, 68), "test": (68, 80)}.items():
        write_parquet(out / f"{name}.parquet", table.slice(lo, hi - lo))
    write_json(out / "labels.json", {"names": names})
    return out


def make_workspace(root: Path, model_dir: Path, prepared: Path, **finetune: object) -> Path:
    """A folder laid out like the repository: models/base, data/prepared, params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, root / "models" / "base")
    shutil.copytree(prepared, root / "data" / "prepared")
    write_params(root, **finetune)
    return root


def write_params(root: Path, **finetune: object) -> None:
    """params.yaml with the tiny defaults overridden by `finetune`."""
    params = {"finetune": {**TINY_PARAMS, **finetune}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and the shared 2-core box does not thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, reviews_csv: Path, tiny_model_dir: Path) -> Path:
    """data/prepared built from the fixture reviews with the tiny tokenizer."""
    return build_prepared(tmp_path_factory.mktemp("prepared"), reviews_csv, tiny_model_dir)


@pytest.fixture()
def workspace(tmp_path: Path, tiny_model_dir: Path, prepared: Path) -> Path:
    """A fresh repository-like folder for one stage run."""
    return make_workspace(tmp_path / "ws", tiny_model_dir, prepared)


def run_in(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the stage script's main() in `ws`, in-process (no interpreter start-up per run)."""
    spec = importlib.util.spec_from_file_location("finetune_stage", STAGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(ws)
    run_stage(module.main)


def subprocess_env() -> dict[str, str]:
    """Environment for child interpreters: offline, one thread each."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, prepared: Path) -> Path:
    """One uninterrupted 3-epoch run evaluated every 4 steps (7 steps per epoch)."""
    ws = make_workspace(
        tmp_path_factory.mktemp("ref") / "ws", tiny_model_dir, prepared, epochs=3.0, eval_steps=4
    )
    threads = torch.get_num_threads()  # module fixtures start before the function-scoped one_thread
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            run_in(ws, mp)
    finally:
        torch.set_num_threads(threads)
    return ws


def test_writes_model_metrics_and_dvclive(reference: Path) -> None:
    out = reference / "models" / "finetuned"
    names = json.loads((reference / "data/prepared/labels.json").read_text())["names"]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == dict(enumerate(names))
    assert json.loads((out / "labels.json").read_text()) == {"names": names}
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    tok = AutoTokenizer.from_pretrained(out)
    assert model(**tok(["很好吃"], return_tensors="pt")).logits.shape == (1, len(names))
    metrics = json.loads((reference / "metrics/finetune.json").read_text())
    assert set(metrics) == {"accuracy", "macro_f1", "loss", "best_step", "steps", "epochs"}
    assert metrics["steps"] == 21 and metrics["best_step"] in {4, 8, 12, 16, 20, 21}
    live = reference / "dvclive"
    assert json.loads((live / "metrics.json").read_text())["step"] == 21
    for name in ("train/loss", "train/learning_rate", "eval/macro_f1", "eval/accuracy", "eval/loss"):
        assert (live / "plots" / "metrics" / f"{name}.tsv").is_file()
    evals = (live / "plots/metrics/eval/macro_f1.tsv").read_text().split()
    assert evals[:2] == ["step", "macro_f1"] and evals[2::2] == ["4", "8", "12", "16", "20", "21"]
    assert not list((reference / "checkpoints" / "finetune").iterdir())  # spent checkpoints removed


def test_learning_rate_warms_up_then_decays(reference: Path) -> None:
    rows = (reference / "dvclive/plots/metrics/train/learning_rate.tsv").read_text().split("\n")[1:]
    logged = {int(r.split("\t")[0]): float(r.split("\t")[1]) for r in rows if r}
    total, warmup = 21, 3  # warmup_ratio 0.1 of 21 steps, rounded up
    # The rate logged at step s is the one step s used: linear warm-up to 1e-3, then linear decay to 0.
    for step, lr in logged.items():
        k = step - 1
        assert lr == pytest.approx(1e-3 * min(k / warmup, (total - k) / (total - warmup))), step
    assert sorted(logged) == [4, 8, 12, 16, 20]


def test_same_seed_same_metrics_and_progress_bar(
    reference: Path, tmp_path: Path, tiny_model_dir: Path, prepared: Path, monkeypatch, capfd
) -> None:
    ws = make_workspace(tmp_path / "ws", tiny_model_dir, prepared, epochs=3.0, eval_steps=4)
    run_in(ws, monkeypatch)
    assert (ws / "metrics/finetune.json").read_bytes() == (reference / "metrics/finetune.json").read_bytes()
    assert "tok/s" in capfd.readouterr().err


def test_freeze_embeddings_and_lowest_layer(workspace: Path, monkeypatch) -> None:
    write_params(workspace, max_steps=3, freeze_embeddings=True, freeze_layers=1)
    run_in(workspace, monkeypatch)
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
    from embedforge.finetune.trainer import finetune
    from embedforge.core.prepared import PreparedData

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == int(sys.argv[1]):
                os.kill(os.getpid(), signal.SIGKILL)

    finetune(load_params().finetune, Path("models/base"), PreparedData(Path("data/prepared")),
             Path("models/finetuned"), Path("metrics/finetune.json"), Path("dvclive"),
             Path("checkpoints/finetune"), callbacks=[Kill()])
    """
)


def test_sigkill_then_resume_matches_uninterrupted(
    reference: Path, tmp_path: Path, tiny_model_dir: Path, prepared: Path, monkeypatch
) -> None:
    ws = make_workspace(tmp_path / "ws", tiny_model_dir, prepared, epochs=3.0, eval_steps=4)
    # Step 10 lies in the second epoch, two steps after the complete checkpoint-8.
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "10"], cwd=ws, env=subprocess_env(), capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not any((ws / o).exists() for o in OUTPUTS)
    (run_dir,) = (ws / "checkpoints/finetune").iterdir()
    kept = sorted(p.name for p in run_dir.glob("checkpoint-*"))
    assert kept[-1] == "checkpoint-8" and set(kept) <= {"checkpoint-4", "checkpoint-8"}  # newest + best
    half = run_dir / "checkpoint-9"  # as if the kill had hit while a checkpoint was being written
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"truncated")

    monkeypatch.chdir(ws)
    result = finetune(
        load_params().finetune, Path("models/base"), PreparedData(Path("data/prepared")),
        Path("models/finetuned"), Path("metrics/finetune.json"), Path("dvclive"),
        Path("checkpoints/finetune"),
    )  # fmt: skip
    assert result["resumed_from"] == 8
    assert (ws / "metrics/finetune.json").read_bytes() == (reference / "metrics/finetune.json").read_bytes()
    for name in ("train/loss", "eval/macro_f1", "eval/loss"):
        tsv = f"dvclive/plots/metrics/{name}.tsv"
        assert (ws / tsv).read_text() == (reference / tsv).read_text(), name


def test_macro_f1_and_accuracy() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [-1.0, 1.0]])
    got = trainer_metrics(EvalPrediction(predictions=logits, label_ids=np.array([0, 0, 1, 1])))
    assert got == pytest.approx({"accuracy": 0.75, "macro_f1": (2 / 3 + 4 / 5) / 2})


def test_checkpoints_keyed_on_params_and_data(prepared: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    p = FinetuneParams()
    inputs = [prepared / "train.parquet", tiny_model_dir]
    key = run_key(p, inputs, 1)
    assert run_key(p, inputs, 1) == key
    assert run_key(dataclasses.replace(p, lr=2e-5), inputs, 1) != key
    assert run_key(p, inputs, 2) != key
    changed = tmp_path / "train.parquet"
    pq.write_table(pq.read_table(prepared / "train.parquet").slice(1), changed)
    assert run_key(p, [changed, tiny_model_dir], 1) != key


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


def test_torchrun_two_cpu_processes(workspace: Path, tiny_model_dir: Path) -> None:
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
    (ws / "data/prepared/validation.parquet").unlink()


def _bad_label(ws: Path) -> None:
    path = ws / "data/prepared/train.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[3] = 5
    pq.write_table(table.set_column(1, "label", pa.array(labels, pa.int64())), path)


BAD = {
    "missing split": (_drop_validation, {}, "validation.parquet: file not found"),
    "label out of range": (_bad_label, {}, "train.parquet row 3: label id 5 is outside"),
    "lr zero": (None, {"lr": 0.0}, "finetune.lr = 0.0 is out of range; expected > 0.0"),
    "lr negative": (None, {"lr": -1e-5}, "finetune.lr = -1e-05 is out of range"),
    "batch size zero": (None, {"batch_size": 0}, "finetune.batch_size = 0 is out of range; expected >= 1"),
    "world size": (None, {"distributed": "ddp", "nproc_per_node": 8}, "cannot fill world size 8"),
    "bf16 on cpu": (None, {"precision": "bf16"}, "needs a CUDA GPU"),
    "freeze too deep": (None, {"freeze_layers": 3}, "finetune.freeze_layers = 3 is out of range"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_one_line_error_no_output(case: str, workspace: Path, monkeypatch, capsys) -> None:
    if torch.cuda.is_available() and case == "bf16 on cpu":
        pytest.skip("bf16 is allowed on a GPU")
    corrupt, params, message = BAD[case]
    if corrupt:
        corrupt(workspace)
    write_params(workspace, **params)
    with pytest.raises(SystemExit) as exit_info:
        run_in(workspace, monkeypatch)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not any((workspace / o).exists() for o in OUTPUTS)
    assert not list(workspace.glob("checkpoints/finetune/*/checkpoint-*"))
