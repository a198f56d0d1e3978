"""tools/exp_args.py and the profiles in params/: a partial params file as `-S` arguments, its outside data
given by `--data` (made absolute, checked to exist), never a hard-coded folder beside the checkout."""

from __future__ import annotations

import os
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from embedforge.core.params import parse_params
from embedforge.core.schema import read_yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "exp_args.py"
EXP_ARGS = runpy.run_path(str(TOOL))
PROFILES = sorted((ROOT / "params").glob("*.yaml"))


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_a_profile_names_no_folder_outside_the_repository(profile: Path) -> None:
    data = read_yaml(profile)
    for value in _strings(data):
        assert not value.startswith(("/", "..", "~")) and "/../" not in value, f"{profile.name}: {value}"
        if "/" in value and not value.startswith(("pkg:", EXP_ARGS["DATA"])):
            assert (ROOT / value).exists(), f"{profile.name}: {value} is not in the repository"
    parse_params(data)  # a valid partial params file as it stands


def test_en_and_shopping10_take_their_data_folder_from_data() -> None:
    for name in ("en.yaml", "shopping10.yaml"):
        assert EXP_ARGS["data_paths"](read_yaml(ROOT / "params" / name)), name


def _fake_data(root: Path) -> Path:
    for name in ("sst2_train.csv", "sst2_dev.csv", "sst2_test.csv"):
        path = root / "classification" / "en" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("sentence,label\ngood,1\n", encoding="utf-8")
    return root


def test_data_is_made_absolute_and_every_file_checked(tmp_path: Path) -> None:
    data = _fake_data(tmp_path / "somewhere" / "data")
    done = cli("params/en.yaml", "--data", "../somewhere/data", cwd=ROOT)  # relative to the working folder
    assert done.returncode == 1 and "not found" in done.stderr  # ROOT/../somewhere does not hold it
    work = tmp_path / "work"
    work.mkdir()
    (work / "params").mkdir()
    (work / "params" / "en.yaml").write_bytes((ROOT / "params" / "en.yaml").read_bytes())
    done = cli("params/en.yaml", "--data", "../somewhere/data", cwd=work)
    assert done.returncode == 0, done.stderr
    argv = shlex.split(done.stdout)
    values = dict(argv[i + 1].split("=", 1) for i in range(0, len(argv), 2))
    assert values["prepare.train_file"] == str(data.resolve() / "classification" / "en" / "sst2_train.csv")
    assert all(not v.startswith("..") and "{data}" not in v for v in values.values())


def test_a_profile_needing_data_without_data_is_one_line(tmp_path: Path) -> None:
    done = cli("params/shopping10.yaml")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "prepare.input" in done.stderr and "--data" in done.stderr
    done = cli("params/shopping10.yaml", "--data", str(tmp_path))
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert str(tmp_path / "classification" / "zh" / "online_shopping_10_cats.zip") in done.stderr


def test_a_profile_without_outside_data_needs_no_data_and_typos_are_one_line(tmp_path: Path) -> None:
    done = cli("params/quick.yaml")
    assert done.returncode == 0 and "-S prepare.sample_rows=" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("finetune:\n  lr: 1e-4\n", encoding="utf-8")
    done = cli(str(bad))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "'lr'" in done.stderr


def test_top_level_keys_become_arguments_too() -> None:
    assert EXP_ARGS["exp_args"]({"finetune": {"max_steps": 10}, "lr": 2e-5}) == [
        "-S",
        "finetune.max_steps=10",
        "-S",
        "lr=2.0e-05",
    ]


def test_the_quick_profile_caps_every_training_and_keeps_every_stage_busy() -> None:
    import embedforge.finetune.ceiling as ceiling

    p = parse_params(read_yaml(ROOT / "params" / "quick.yaml"))
    assert 0 < p.prepare.sample_rows <= 600 and 0 < p.finetune.max_steps <= 10
    assert ceiling.ceiling_sizes(p) == [50] and p.curves.seeds == 1
    assert ceiling.run_params(p.finetune, p.ceiling, 100, 0).max_steps == p.ceiling.max_steps <= 5
    assert p.export.word2vec, "export would write nothing"
    assert p.evaluate.selection_set in p.evaluate.similarity_files  # a matrix is recommended
    assert set(p.evaluate.similarity_files) <= set(p.extract.extra_words)  # their words are in the matrices
