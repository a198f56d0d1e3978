"""The everyday DVC commands the README shows: a readable `dvc exp show`, and push/pull through the default
remote. Each runs real DVC in a tiny project (one trivial stage), not the pipeline."""

from __future__ import annotations

import filecmp
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from embedforge.evaluate.outputs import HEADLINE_FILE, headline

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.prefix) / "bin" / "dvc")
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
EXPS_TOOL = ROOT / "tools" / "exps.py"
EXPS = runpy.run_path(str(EXPS_TOOL))


def run(cwd: Path, *args: str, columns: int = 400, env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "DVC_NO_ANALYTICS": "1", **(env or {})}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def readme_command(prefix: str) -> list[str]:
    """The experiments guide's command line that starts with `prefix` (its comment cut off), as argv."""
    for line in (ROOT / "docs" / "guide" / "experiments.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(prefix):
            return shlex.split(line, comments=True)
    raise AssertionError(f"docs/guide/experiments.md shows no command starting with {prefix!r}")


def test_dvc_metrics_are_the_compact_set_and_the_detail_plain_outputs() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    metrics = {next(iter(m)) for s in stages.values() for m in s.get("metrics", [])}
    assert metrics == {"metrics/finetune.json", f"metrics/{HEADLINE_FILE}"}
    outs = {next(iter(o)) if isinstance(o, dict) else o for s in stages.values() for o in s.get("outs", [])}
    detail = {"metrics/similarity.json", "metrics/classification.json", "dvclive/metrics.json"}
    assert detail | {"metrics/prepare.json"} <= outs  # prepare's counters: dozens of columns, not metrics
    assert stages["prepare"]["outs"][-1] == {"metrics/prepare.json": {"cache": False, "persist": True}}
    export = stages["export"]  # its own cheap step: nothing of evaluate, extract only through embeddings/
    # prepare (its language: how the model2vec tokenizer segments raw text), the whole section: a key missing
    # from a user's params.yaml would stop DVC, and the prepare stage already requires the section
    assert export["params"] == ["export", "prepare"] and "embeddings" in export["deps"]
    assert not {"models/finetuned", "data/prepared"} & set(export["deps"])


def test_make_exps_keeps_the_headline_numbers_and_every_params_column() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^exps: setup.*\n\tPYTHONPATH=src \$\(BIN\)/python tools/exps\.py$", makefile, re.M)
    dropped = re.compile(EXPS["drop_regex"]())
    kept = ["Experiment", "similarity", "analogy", "classifier", "probe", "lr", "finetune.epochs"]
    kept += [f"{section}.x" for section in ("model", "prepare", "curves", "ceiling", "extract", "export")]
    gone = ["Created", "rev", "best.wordsim240", "cls_finetuned.ca_translated", "recommended.wordsim297"]
    gone += ["accuracy", "macro_f1", "probe_random", "classifier_accuracy", "data/prepared", "embeddings"]
    assert [c for c in kept if dropped.search(c)] == []
    assert [c for c in gone if not dropped.search(c)] == []
    argv = EXPS["command"](["-A"])
    assert argv[1:4] == ["exp", "show", "--only-changed"] and argv[-1] == "-A"


def _tiny_project(root: Path) -> Path:
    """A git + DVC project with one stage: params like the real ones -> headline-shaped metrics + a folder."""
    root.mkdir()
    template = headline(  # the real headline's keys, from documents shaped like the default run's
        {
            "similarity.json": {
                m: {
                    **{s: {"spearman": 0.5, "pearson": 0.5, "coverage": 1.0} for s in SIMILARITY_SETS},
                    "ca_translated": {"accuracy": 0.4, "coverage": 1.0},
                }
                for m in ("cls_finetuned", "decontext_base_L4")
            },
            "classification.json": {
                "finetuned": {"accuracy": 0.9, "macro_f1": 0.89},
                "probe": {m: {"frozen": {"macro_f1": 0.9}} for m in ("cls_finetuned", "random")},
            },
        }
    )
    (root / "template.json").write_text(json.dumps(template), encoding="utf-8")
    (root / "params.yaml").write_text(
        "lr: 0.0001\nfinetune:\n  epochs: 1.0\nextract:\n  pooling: mean\n  layers: all\n", encoding="utf-8"
    )
    (root / "stage.py").write_text(STAGE, encoding="utf-8")
    (root / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "run": {
                        "cmd": f"{sys.executable} stage.py",
                        "deps": ["stage.py", "template.json"],
                        "params": ["lr", "finetune", "extract"],
                        "outs": ["embeddings"],
                        "metrics": [{f"metrics/{HEADLINE_FILE}": {"cache": False}}],
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    run(root, "git", "init", "-q")
    run(root, DVC, "init", "-q")
    shutil.copy(ROOT / ".dvc" / "config", root / ".dvc" / "config")  # the project's default remote
    (root / ".dvc" / "config").write_text(
        re.sub(r"\[plots\][^\[]*", "", (root / ".dvc" / "config").read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    run(root, DVC, "repro", "-q")
    run(root, *GIT, "add", "-A")
    run(root, *GIT, "commit", "-q", "-m", "tiny")
    return root


SIMILARITY_SETS = ("wordsim240", "wordsim297", "multisimlex_zh")
STAGE = """\
import hashlib, json, os
text = open("params.yaml").read()
seed = int(hashlib.md5(text.encode()).hexdigest(), 16)
def perturb(obj, k=[0]):
    if isinstance(obj, dict):
        return {key: perturb(v) for key, v in obj.items()}
    k[0] += 1
    return round(0.3 + (seed >> (7 * k[0])) % 1000 / 2000, 4)
os.makedirs("metrics", exist_ok=True)
os.makedirs("embeddings", exist_ok=True)
headline = perturb(json.load(open("template.json")))
json.dump(headline, open("metrics/headline.json", "w"), indent=2, sort_keys=True)  # as write_json
open("embeddings/m.txt", "w").write(str(seed))
"""


@pytest.mark.slow
def test_exp_show_of_the_default_and_two_experiments_fits_120_columns(tmp_path: Path) -> None:
    project = _tiny_project(tmp_path / "project")
    for change in ("lr=2e-5", "extract.pooling=max"):
        run(project, DVC, "exp", "run", "-q", "-S", change)
        run(project, "git", "checkout", "-q", "--", ".")  # back to the default before the next one
    assert readme_command("make exps") == ["make", "exps"]  # the guide's command, which runs tools/exps.py
    env_src = {"PYTHONPATH": str(ROOT / "src")}
    table = run(project, sys.executable, str(EXPS_TOOL), "--no-pager", env=env_src)
    lines = table.rstrip("\n").splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 120, table
    header = lines[1].split()
    assert header == [
        "Experiment",
        "analogy",
        "classifier",
        "probe",
        "similarity",
        "lr",
        "extract.pooling",
    ]
    rows = [line for line in lines if re.search(r"\d\.\d", line)]
    assert len(rows) == 4 and "…" not in table  # workspace, baseline, two experiments: every cell readable


@pytest.mark.slow
def test_push_then_pull_on_a_second_clone_through_the_default_remote(tmp_path: Path) -> None:
    project = _tiny_project(tmp_path / "project")
    run(project, DVC, "push", "-q")
    assert (tmp_path / "embedforge-dvc-remote").is_dir()  # beside the checkout, as .dvc/config says
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    assert not (clone / "embeddings").exists()
    run(clone, DVC, "pull", "-q")
    match, mismatch, errors = filecmp.cmpfiles(project, clone, ["embeddings/m.txt"], shallow=False)
    assert match == ["embeddings/m.txt"] and not mismatch and not errors
