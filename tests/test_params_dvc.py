"""params.yaml values written by `dvc exp run -S` read back as the user typed them.

DVC applies `-S key=value` with Hydra's override grammar and writes the file with ruamel.yaml (YAML 1.2):
`off`, `yes`, `no` are written unquoted (text in YAML 1.2), `null` as an empty value, `2e-5` as `2e-05`,
`1e-4` as `0.0001`, `inf` as `.inf`. One tiny DVC project and ONE `dvc exp run` cover every case: each case
is its own params file, and the stage records what `load_params` makes of each.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")

# The stage: load every case file with the project's reader, record the parsed params or the error.
READER = """\
import dataclasses, json, pathlib
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import load_params
out = {}
for path in sorted(pathlib.Path(".").glob("case_*.yaml")):
    try:
        out[path.stem] = dataclasses.asdict(load_params(path))
    except EmbedforgeError as err:
        out[path.stem] = {"error": str(err)}
pathlib.Path("parsed.json").write_text(json.dumps(out, indent=1))
"""

SPLIT_FILES = {"train_file": "a.csv", "validation_file": "b.csv", "test_file": "c.csv"}

# case -> (-S overrides, (section, key) -> expected value, or "error: <text in the message>"); section "" =
# the top level
CASES: dict[str, tuple[list[str], dict[tuple[str, str], object]]] = {
    "off_is_text": (["finetune.distributed=off"], {("finetune", "distributed"): "off"}),
    "true": (["finetune.freeze_embeddings=true"], {("finetune", "freeze_embeddings"): True}),
    "false_any_case": (["finetune.freeze_embeddings=False"], {("finetune", "freeze_embeddings"): False}),
    "yes_is_not_a_boolean": (
        ["finetune.freeze_embeddings=yes"],
        {
            (
                "finetune",
                "freeze_embeddings",
            ): "error: freeze_embeddings = 'yes' is not valid; expected true or"
        },
    ),
    "no_is_not_a_boolean": (
        ["finetune.freeze_embeddings=no"],
        {("finetune", "freeze_embeddings"): "error: freeze_embeddings = 'no' is not valid; expected true or"},
    ),
    "on_is_not_a_boolean": (
        ["finetune.freeze_embeddings=on"],
        {("finetune", "freeze_embeddings"): "error: freeze_embeddings = 'on' is not valid; expected true or"},
    ),
    "null": (
        ["prepare.input=null"] + [f"prepare.{k}={v}" for k, v in SPLIT_FILES.items()],
        {("prepare", "input"): None, ("prepare", "train_file"): "a.csv"},
    ),
    "int": (["finetune.seed=7"], {("finetune", "seed"): 7}),
    "int_for_float": (["finetune.epochs=2"], {("finetune", "epochs"): 2.0}),
    "float_2e-5": (["lr=2e-5"], {("", "lr"): 2e-5}),  # the card's own command: dvc exp run -S lr=2e-5
    "float_1e-4": (["lr=1e-4"], {("", "lr"): 1e-4}),
    "float_point5": (["finetune.warmup_ratio=.5"], {("finetune", "warmup_ratio"): 0.5}),
    "string": (["prepare.input=data/other.csv"], {("prepare", "input"): "data/other.csv"}),
    "quoted_number_is_text": (["prepare.text_column='1'"], {("prepare", "text_column"): "1"}),
    "inf": (
        ["lr=inf"],
        {("", "lr"): "error: lr = inf is not valid; expected a finite"},
    ),
    "nan": (
        ["lr=nan"],
        {("", "lr"): "error: lr = nan is not valid; expected a finite"},
    ),
    "negative_seed": (
        ["finetune.seed=-1"],
        {("finetune", "seed"): "error: finetune.seed = -1 is out of range"},
    ),
}

BASE = """\
lr: 1.0e-4
prepare:
  input: data/raw.csv
  train_file: null
  validation_file: null
  test_file: null
  text_column: review
finetune:
  seed: 42
  epochs: 1.0
  warmup_ratio: 0.06
  freeze_embeddings: true
  distributed: auto
"""


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{args}: {res.stdout}\n{res.stderr}"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Run one `dvc exp run` with every case's -S values; return the project and the parsed params."""
    if not DVC.is_file() or shutil.which("git") is None:
        pytest.skip("dvc (next to the test's python) and git are needed")
    project = tmp_path_factory.mktemp("dvc-params")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    (project / "read_params.py").write_text(READER)
    for case in CASES:
        (project / f"case_{case}.yaml").write_text(BASE)
    stage = {
        "cmd": f"{shlex.quote(sys.executable)} read_params.py",
        "deps": ["read_params.py"],
        "params": [{f"case_{case}.yaml": None} for case in CASES],
        "outs": [{"parsed.json": {"cache": False}}],
    }
    (project / "dvc.yaml").write_text(json.dumps({"stages": {"read": stage}}, indent=1))
    _run(["git", "init", "-q"], project, env)
    _run([str(DVC), "init", "-q"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-q", "-m", "init"], project, env)
    overrides = [f"case_{case}.yaml:{o}" for case, (sets, _) in CASES.items() for o in sets]
    _run([str(DVC), "exp", "run", "-q", *[a for o in overrides for a in ("-S", o)]], project, env)
    return project, json.loads((project / "parsed.json").read_text())


@pytest.mark.parametrize("case", list(CASES))
def test_value_set_with_dvc_exp_run(experiment, case):
    _, parsed = experiment
    got = parsed[f"case_{case}"]
    for (section, key), expected in CASES[case][1].items():
        if isinstance(expected, str) and expected.startswith("error: "):
            assert "error" in got, got
            assert expected.removeprefix("error: ") in got["error"]
            assert "\n" not in got["error"]
        else:
            assert "error" not in got, got["error"]
            value = got[section][key] if section else got[key]  # "": a top-level key
            assert value == expected and type(value) is type(expected), (value, expected)


def test_how_dvc_writes_the_values(experiment):
    """What the reader must agree with: DVC (ruamel.yaml, YAML 1.2) leaves these unquoted."""
    project, _ = experiment

    def line(case: str, key: str) -> str:
        text = (project / f"case_{case}.yaml").read_text()
        return next(x.strip() for x in text.splitlines() if x.strip().startswith(f"{key}:"))

    assert line("off_is_text", "distributed") == "distributed: off"
    assert line("yes_is_not_a_boolean", "freeze_embeddings") == "freeze_embeddings: yes"
    assert line("null", "input") == "input:"
    assert line("float_2e-5", "lr") == "lr: 2e-05"
    assert line("inf", "lr") == "lr: .inf"
    assert line("quoted_number_is_text", "text_column") == "text_column: '1'"
