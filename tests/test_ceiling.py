"""The `ceiling` stage: the tiny transformer fine-tuned on the curves' own subsets, scored on test."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import embedforge.finetune.ceiling as ceiling
from embedforge.core.curves import CurvePlan, capped_classes, nested_subsets
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import CEILING_READS, CeilingParams, FinetuneParams, Params, parse_params
from embedforge.core.prepared import PreparedData
from embedforge.evaluate.curves import CurveRunner
from embedforge.evaluate.run import probe_splits
from embedforge.fingerprint import stage_fingerprints

SETTINGS = {
    "curves": {"sizes": [3, 5, 0], "seeds": 2, "seed": 7},
    "evaluate": {"curve_consumers": ["mean"]},
    "finetune": {"seed": 1},
    "ceiling": {"max_size": 3, "batch_size": 4, "epochs": 1, "min_steps": 2},
}


@pytest.fixture(scope="module")
def run(prepared_dir: Path, tiny_model_dir: Path) -> dict:
    """run_ceiling once, recording the training rows of every run."""
    seen: list[np.ndarray] = []
    real = ceiling.subset

    def spy(split: ceiling.Split, rows: np.ndarray) -> ceiling.Split:
        seen.append(np.asarray(rows))
        return real(split, rows)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ceiling, "subset", spy)
        document = ceiling.run_ceiling(parse_params(SETTINGS), tiny_model_dir, PreparedData(prepared_dir))
    return {"document": document, "rows": seen}


def test_it_trains_on_exactly_the_subsets_the_curves_draw(run: dict, prepared_dir: Path) -> None:
    p = parse_params(SETTINGS)
    prepared = PreparedData(prepared_dir)
    # as evaluate draws them, from its own data
    curves = CurveRunner(p.evaluate, prepared.label_names(), draws=p.curves)
    train, test = probe_splits(prepared, {})
    curves.add("random", torch.zeros(1, 4), train, test)
    assert curves.plan is not None
    assert [r.tolist() for r in run["rows"]] == [r.tolist() for r in curves.plan.runs["3"]]  # size 5 > max
    point = run["document"]["sizes"]["3"]
    assert point["train_rows"] == curves.plan.rows()["3"] == 6
    assert point["draws"] == curves.plan.digest("3")


def test_ceiling_json_schema_and_a_rerun_gives_the_same_bytes(
    run: dict, prepared_dir: Path, tiny_model_dir: Path
) -> None:
    document = run["document"]
    assert list(document) == ["sizes"] and list(document["sizes"]) == ["3"]
    point = document["sizes"]["3"]
    assert set(point) == {
        "macro_f1",
        "macro_f1_sd",
        "accuracy",
        "accuracy_sd",
        "runs",
        "train_rows",
        "steps",
        "draws",
    }
    assert point["runs"] == 2 and point["steps"] == 2  # 6 rows, batch 4, 1 epoch = 2 steps = min_steps
    assert 0.0 <= point["macro_f1"] <= 1.0 and point["accuracy_sd"] >= 0.0
    again = ceiling.run_ceiling(parse_params(SETTINGS), tiny_model_dir, PreparedData(prepared_dir))
    assert json.dumps(again) == json.dumps(document)


def test_the_schedule_runs_epochs_but_at_least_min_steps() -> None:
    c = CeilingParams()  # the defaults: batch 32, 3 epochs, at least 30 steps
    f = FinetuneParams(seed=42, batch_size=16, grad_accum_steps=2, max_steps=7)
    small, large = ceiling.run_params(f, c, 100, 0), ceiling.run_params(f, c, 2000, 2)
    assert (small.max_steps, large.max_steps) == (30, 189)  # 100 rows: 4 batches x 3 < 30
    assert (small.seed, large.seed) == (42, 44) and small.batch_size == 32 and small.grad_accum_steps == 1
    # the finetune stage's optimiser
    assert small.weight_decay == f.weight_decay and small.warmup_ratio == f.warmup_ratio


def test_ceiling_max_steps_caps_every_run_and_wins_over_min_steps() -> None:
    f = FinetuneParams(seed=42)
    capped = CeilingParams(max_steps=12)  # min_steps 30 and 3 epochs would ask for more
    assert [ceiling.run_params(f, capped, rows, 0).max_steps for rows in (100, 2000)] == [12, 12]
    loose = CeilingParams(max_steps=500)
    assert [ceiling.run_params(f, loose, rows, 0).max_steps for rows in (100, 2000)] == [30, 189]
    assert parse_params({"ceiling": {"max_steps": 5}}).ceiling.max_steps == 5
    with pytest.raises(EmbedforgeError, match="ceiling.max_steps"):
        parse_params({"ceiling": {"max_steps": -1}})


def test_a_run_depends_only_on_the_keys_the_fingerprint_tracks() -> None:
    c = CeilingParams()
    tracked = {k: getattr(FinetuneParams(), k) for k in CEILING_READS["finetune"]}
    a = FinetuneParams(**tracked)
    b = FinetuneParams(**tracked, batch_size=8, grad_accum_steps=4, epochs=5.0, max_steps=3, eval_steps=9)
    assert ceiling.run_params(a, c, 100, 1) == ceiling.run_params(replace(b, distributed="ddp"), c, 100, 1)
    base = stage_fingerprints(Params())["ceiling"]
    assert set(base) == {"finetune"}  # the draws are the `curves` section, which dvc.yaml lists itself
    other = parse_params({"evaluate": {"probe_words": ["好"]}, "finetune": {"epochs": 2}})
    assert stage_fingerprints(other)["ceiling"] == base  # an unrelated key leaves the ceiling alone
    moved = parse_params({"finetune": {"weight_decay": 0.1}})
    assert stage_fingerprints(moved)["ceiling"]["finetune"]["weight_decay"] == 0.1


def test_max_size_below_every_curve_size_runs_nothing(prepared_dir: Path) -> None:
    p = parse_params({**SETTINGS, "ceiling": {"max_size": 2}})
    assert ceiling.ceiling_sizes(p) == []
    assert ceiling.run_ceiling(p, Path("/nonexistent"), PreparedData(prepared_dir)) == {"sizes": {}}
    assert ceiling.ceiling_sizes(parse_params({})) == [50, 200]  # the default: not 1000 (cost)


def test_a_class_smaller_than_the_size_gives_all_its_rows_and_is_reported() -> None:
    labels = np.array([0] * 30 + [1] * 12 + [2] * 5)
    subsets = nested_subsets(labels, [10, 0], seed=3)
    assert np.bincount(labels[subsets["10"]]).tolist() == [10, 10, 5]
    assert capped_classes(labels, [3, 10, 20, 0]) == {"10": {2: 5}, "20": {1: 12, 2: 5}}
    plan = CurvePlan.of(labels, [10, 20], seeds=2, seed=3)
    assert plan.digest("10", 1) != plan.digest("10") and plan.digest("10") == plan.digest("10", 2)


def test_stage_writes_metrics_ceiling_json(
    prepared_dir: Path, tiny_model_dir: Path, tmp_path: Path, run_stage, run: dict
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base").symlink_to(tiny_model_dir)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prepared").symlink_to(prepared_dir)
    lines = [f"{s}:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items()) for s, keys in SETTINGS.items()]
    (tmp_path / "params.yaml").write_text("".join(lines), encoding="utf-8")
    code, _ = run_stage(tmp_path, "ceiling")
    assert code == 0
    assert json.loads((tmp_path / "metrics" / "ceiling.json").read_text(encoding="utf-8")) == run["document"]
