"""Every code block of the README runs or is checked, and its numbers are the committed run's.

Python blocks run against a tiny matrix written at the path the block names. Shell blocks are checked
mechanically: every `make` target exists, every `-S key` is a schema key, every `dvc` option is one the
installed DVC accepts, every repository path exists. The result table is read off the committed metrics.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import torch
import yaml

from embedforge.core import params as schema
from embedforge.core.embedding import WordVectors
from embedforge.core.schema import keys

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", README, re.M | re.S)
REPO_DIRS = ("params", "tools", "data", "docs", "bench", "research", "src", "stages", "metrics", "tests")


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCKS if lang == language]


def shell_commands() -> list[list[str]]:
    """Each command line of the README's bash blocks (continuations joined, comments cut) as argv."""
    commands = []
    for code in blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            # a command substitution is one word here; its inside is checked on its own
            words = shlex.split(re.sub(r"\$\((.*?)\)", lambda m: "'$(" + m[1] + ")'", line), comments=True)
            if words:
                commands.append(words)
    return commands


def schema_keys() -> set[str]:
    """Every key `-S` can set: `lr`, `finetune.seed`, ... (the section names themselves too)."""
    return set(keys(schema.Params))


@cache
def dvc_help(*subcommand: str) -> str:
    dvc = Path(sys.executable).with_name("dvc")
    done = subprocess.run([str(dvc), *subcommand, "--help"], capture_output=True, text=True, check=True)
    return done.stdout


def test_the_readme_is_short_and_has_code_to_check() -> None:
    assert len(README.splitlines()) <= 250
    assert blocks("python") and blocks("bash")
    assert {lang for lang, _ in BLOCKS} <= {"python", "bash"}, (
        "a block in a language this test does not check"
    )


def write_tiny_student(folder: Path, words: list[str]) -> None:
    """A small untrained mean-model student saved as the `student` stage saves one."""
    from embedforge.student.classifier import Classifier, StudentConfig
    from embedforge.student.train import build_net

    weight = torch.randn(len(words), 8, generator=torch.Generator().manual_seed(0))
    net = {"filters": 4, "hidden": 4, "dropout": 0.5}
    config = StudentConfig("mean", ["negative", "positive"], "zh", len(words), 8, net, matrix="tiny")
    Classifier(build_net("mean", weight, 2, False, None, None), words, config).save(folder, onnx=False)


@pytest.mark.parametrize("code", blocks("python"))
def test_python_blocks_run_against_the_files_they_name(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = ["好吃", "难吃", "味道", "外卖", "送餐", "服务", "米饭", "便宜"]
    names = set(re.findall(r"\"(embeddings/[\w.-]+)\"", code))
    student = '"models/student"' in code
    if "load_recommended(" in code or "recommended_path(" in code:  # the committed run's metrics name it
        (tmp_path / "metrics").mkdir()
        shutil.copy(ROOT / "metrics" / "similarity.json", tmp_path / "metrics")
        names.add(f"embeddings/{_committed_recommendation()}")
    assert names or student, "the block names no matrix and no student"
    for name in names:
        WordVectors(words, torch.randn(len(words), 8, generator=torch.Generator().manual_seed(0))).save(
            tmp_path / name
        )
    if student:
        write_tiny_student(tmp_path / "models" / "student", words)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own code
    if names:
        assert "('" in out.getvalue(), "the block printed no neighbours"
    if student:
        assert "positive" in out.getvalue() or "negative" in out.getvalue(), "the block printed no label"


def _committed_recommendation() -> str:
    return json.loads((ROOT / "metrics" / "similarity.json").read_text(encoding="utf-8"))["recommended"]


def test_the_first_python_block_loads_the_recommended_matrix_and_shows_its_neighbours() -> None:
    first = blocks("python")[0]
    assert "load_recommended()" in first and ".most_similar(" in first


def test_the_matrix_the_readme_loads_is_the_committed_run_s_recommendation() -> None:
    recommended = _committed_recommendation()
    named = set(re.findall(r"embeddings/([\w.-]+)", README)) | set(re.findall(r"\[(\w+)\]'", README))
    assert named == {recommended}


def test_every_make_target_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = [words[1] for words in shell_commands() if words[0] == "make"]
    assert {"run", "test"} <= set(targets)
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"Makefile has no target {target!r}"


def test_every_dvc_option_and_params_key_is_real() -> None:
    keys = schema_keys()
    dvc_lines = [words for words in shell_commands() if words[0] == "dvc"]
    assert dvc_lines
    for words in dvc_lines:
        sub = tuple(w for w in words[1:3] if not w.startswith("-"))
        sub = sub[:2] if sub and sub[0] == "exp" else sub[:1]
        for option in (w.split("=")[0] for w in words if w.startswith("-")):
            assert re.search(rf"(^|[\s,]){re.escape(option)}\b", dvc_help(*sub)), f"dvc {sub}: no {option}"
        for i, word in enumerate(words):
            if word == "-S":
                key = words[i + 1].split("=")[0]
                assert key in keys, f"-S {key}: not a params key"


def test_every_repository_path_exists_and_the_profile_command_resolves() -> None:
    paths = re.findall(rf"(?<![/\w])((?:{'|'.join(REPO_DIRS)})/[\w./-]+)", README)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"].values()
    outputs = {next(iter(o)) if isinstance(o, dict) else o for s in stages for o in s.get("outs", [])}
    for path in (p for p in paths if p.rstrip("/") not in outputs):  # a stage writes those
        assert (ROOT / path.rstrip(".")).exists(), f"README names {path}, which does not exist"
    inner = re.findall(r"\$\((?:\S*python) (tools/exp_args\.py \S+)\)", README)
    assert inner, "the README shows no profile command"
    for call in inner:
        done = subprocess.run([sys.executable, *call.split()], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        argv = shlex.split(done.stdout)
        assert all(
            argv[i + 1].split("=")[0] in schema_keys() for i in range(0, len(argv), 2) if argv[i] == "-S"
        )


def test_every_relative_link_leads_to_a_file() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).is_file(), f"README links {target}, which does not exist"


def _cell(value: float) -> str:
    return f"{value:.3f}".lstrip("0").replace("-0.", "-.")


def test_the_result_table_is_the_committed_metrics() -> None:
    similarity = json.loads((ROOT / "metrics" / "similarity.json").read_text(encoding="utf-8"))
    peer = json.loads((ROOT / "research/peers/results/peers.json").read_text(encoding="utf-8"))["scores"]
    rows = {line.split("|")[1].strip(): line for line in README.splitlines() if line.startswith("| ")}
    row_of = {
        "decontext_finetuned_L3_4": next(r for k, r in rows.items() if k.startswith("**recommended**")),
        "cls_finetuned": next(r for k, r in rows.items() if "`cls_finetuned`" in k),
    }
    sets = ("wordsim240", "wordsim297", "multisimlex_zh:held")
    for matrix, row in row_of.items():
        selected = similarity["selection"]["matrices"][matrix]
        for s in sets:
            scores = selected[s]
            cell = f"{_cell(scores['spearman'])} ({_cell(scores['low'])}–{_cell(scores['high'])})"
            assert cell in row.replace("**", ""), f"{matrix} {s}: README lacks {cell}"
        assert _cell(similarity[matrix]["ca_translated"]["accuracy"]) in row
    peer_row = next(r for k, r in rows.items() if k.startswith("peer: model2vec"))
    expected = [_cell(peer[s]["spearman"]) for s in sets] + [_cell(peer["ca_translated"]["accuracy"])]
    assert [c.strip() for c in peer_row.split("|")[2:-1]] == expected
