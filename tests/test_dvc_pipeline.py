"""The pipeline through DVC itself, in a tiny project: every input tracked, a failed run keeps the last
good results, and the stage commands work however `dvc` is started.

One module-scoped project reproduces the whole pipeline once (tiny model, 2 fine-tuning steps); each test
then changes one thing, runs DVC and puts the thing back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from embedforge.core.files import path_fingerprint
from embedforge.core.params import parse_params
from embedforge.fingerprint import source_fingerprint, stage_fingerprints

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the virtual environment running the tests (has dvc, torch, ...)


def _env() -> dict[str, str]:
    """The environment of a user who runs `.venv/bin/dvc` without the venv on PATH and no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not Path(p).resolve().is_relative_to(VENV)
    )
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", DVC_NO_ANALYTICS="1")
    return env


def dvc(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the venv's `dvc` in `project`."""
    done = subprocess.run(
        [str(VENV / "bin" / "dvc"), *args], cwd=project, env=_env(), capture_output=True, text=True
    )
    if check and done.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def status(project: Path) -> dict:
    """`dvc status --json` as a dict (stage -> changes); the always-run fingerprint stage left out."""
    out = json.loads(dvc(project, "status", "--json").stdout or "{}")
    assert "always changed" in out.pop("fingerprint")  # (and its outputs differ when run outside DVC)
    return out


def snapshot(project: Path, *paths: str) -> dict[str, str]:
    """md5 of every file under `paths`, by relative path."""
    files = sorted(f for p in paths for f in [project / p, *(project / p).rglob("*")] if f.is_file())
    return {str(f.relative_to(project)): hashlib.md5(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, reviews_csv: Path) -> Path:
    """A reproduced tiny project whose inputs all live outside it (and outside any data/ folder)."""
    outside = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(tiny_model_dir, outside / "model")
    shutil.copy(reviews_csv, outside / "reviews.csv")
    chars = sorted({c for t in pd.read_csv(reviews_csv)["review"] for c in t if not c.isspace()})
    (outside / "words.txt").write_text("\n".join(chars[:20]) + "\n", encoding="utf-8")
    pairs = [f"{a}\t{b}\t{i % 5}" for i, (a, b) in enumerate(zip(chars[:30], chars[30:60], strict=True))]
    (outside / "pairs.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")

    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    # a copy, not a link: the stages must import this checkout's code, not the installed one
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / ".venv").symlink_to(VENV)  # the project's own .venv, as `make setup` makes it
    params = {
        "lr": 1e-4,  # the one top-level key (finetune and ceiling list it in dvc.yaml)
        "model": {"source": str(outside / "model")},
        "prepare": {
            "input": str(outside / "reviews.csv"),
            "max_length": 64,
            "min_count": 1,
            "train_ratio": 0.7,
            "validation_ratio": 0.15,
            "test_ratio": 0.15,
        },
        "finetune": {"max_steps": 2, "batch_size": 8, "eval_steps": 1},
        "curves": {"seeds": 3},  # DVC needs every section a stage lists to be in params.yaml
        "ceiling": {"max_size": 50, "min_steps": 2, "epochs": 0.1},
        "extract": {
            "strategies": ["input", "decontext"],
            "layers": "last",
            "extra_words": [str(outside / "words.txt")],
        },
        "export": {"word2vec": ["input_*"]},
        "student": {"epochs": 1, "hidden": 4, "speed_rows": 8},
        "evaluate": {
            "similarity_files": [str(outside / "pairs.tsv")],
            "analogy_files": [],
            "probe_words": chars[:3],
            "probe_epochs": 1,
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run(
        [*git, "commit", "-q", "-m", "tiny project"], cwd=root, check=True
    )  # DVCLive needs a commit
    dvc(root, "repro")
    return root


@pytest.mark.slow
def test_repro_works_without_the_venv_on_path_and_leaves_nothing_stale(project: Path) -> None:
    assert json.loads((project / "metrics" / "similarity.json").read_text(encoding="utf-8"))
    assert (project / "embeddings" / "index.json").is_file()
    assert (project / "exports" / "word2vec" / "input_base.txt").is_file()
    assert (project / "models" / "student" / "model.safetensors").is_file()
    assert "student_macro_f1" in json.loads(
        (project / "metrics" / "headline.json").read_text(encoding="utf-8")
    )
    assert status(project) == {}
    # a second repro re-fingerprints the inputs and runs nothing else
    assert "Running stage 'prepare'" not in dvc(project, "repro").stdout


@pytest.mark.slow
def test_stages_import_the_src_of_the_checkout_being_reproduced(project: Path) -> None:
    probe = project / "stages" / "whoami.py"
    probe.write_text("import embedforge\nprint(embedforge.__file__)\n", encoding="utf-8")
    try:
        done = subprocess.run(
            ["sh", "stages/run.sh", "whoami"], cwd=project, env=_env(), capture_output=True, text=True
        )
    finally:
        probe.unlink()
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve().is_relative_to((project / "src").resolve())


def fingerprint(project: Path) -> None:
    """Run the fingerprint stage's command, as `dvc repro` does first (without DVC's start-up time)."""
    subprocess.run(["sh", "stages/run.sh", "fingerprint"], cwd=project, env=_env(), check=True)


def _edit(path: Path) -> None:
    """Append a file to a folder, or a line to a file."""
    if path.is_dir():
        (path / "README.md").write_text("edited\n", encoding="utf-8")
    else:
        path.write_text(
            path.read_text(encoding="utf-8") + path.read_text(encoding="utf-8").splitlines()[0] + "\n"
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("section", "key", "stage"),
    [
        ("model", "source", "model"),
        ("prepare", "input", "prepare"),
        ("extract", "extra_words", "extract"),
        ("evaluate", "similarity_files", "evaluate"),
    ],
)
def test_editing_an_input_outside_the_project_makes_exactly_its_stage_stale(
    project: Path, section: str, key: str, stage: str
) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    value = params[section][key]
    path = Path(value[0] if isinstance(value, list) else value)
    saved = snapshot(path.parent, path.name)
    backup = path.with_name(path.name + ".orig")
    (shutil.copytree if path.is_dir() else shutil.copy)(path, backup)
    try:
        _edit(path)
        fingerprint(project)
        changed = status(project)
        assert list(changed) == [stage]
        assert {"changed deps": {f"fingerprints/{stage}.json": "modified"}} in changed[stage]
    finally:
        (shutil.rmtree if path.is_dir() else os.remove)(path)
        os.replace(backup, path)
    assert snapshot(path.parent, path.name) == saved
    fingerprint(project)
    assert status(project) == {}


def _stages_listing(module: str) -> list[str]:
    """The stages whose dvc.yaml deps name `module` (a path under src/)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return sorted(name for name, stage in stages.items() if module in stage.get("deps", []))


def _only_in(stage: str) -> str:
    """A module of `stage`'s own package that no other stage imports."""
    package = f"src/embedforge/{stage}/"
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return next(d for d in stages[stage]["deps"] if d.startswith(package) and _stages_listing(d) == [stage])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "stages"),
    [
        (_only_in("extract"), ["extract"]),  # nothing before extract re-runs
        (_only_in("evaluate"), ["evaluate"]),
        (_only_in("student"), ["student"]),
        ("src/embedforge/core/curves.py", ["ceiling", "evaluate"]),
    ],
)
def test_a_comment_edit_in_a_module_makes_exactly_the_stages_that_import_it_stale(
    project: Path, module: str, stages: list[str]
) -> None:
    assert _stages_listing(module) == stages
    path = project / module
    good = path.read_text(encoding="utf-8")
    try:
        path.write_text(good + "# a comment\n", encoding="utf-8")
        changed = status(project)
        assert sorted(changed) == stages
        for stage in stages:
            assert changed[stage] == [{"changed deps": {module: "modified"}}]
    finally:
        path.write_text(good, encoding="utf-8")
    assert status(project) == {}


EVALUATE_OUTPUTS = ("metrics/report.md", "metrics/similarity.json", "metrics/classification.json", "plots")


@pytest.mark.slow
def test_a_failing_evaluate_keeps_the_last_good_results_and_stays_stale(project: Path) -> None:
    before = snapshot(project, *EVALUATE_OUTPUTS)
    pairs = Path(
        yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))["evaluate"]["similarity_files"][
            0
        ]
    )
    good = pairs.read_text(encoding="utf-8")
    try:
        pairs.write_text(good + "one field only\n", encoding="utf-8")
        done = dvc(project, "repro", check=False)
        assert done.returncode != 0
        assert "failed to reproduce 'evaluate'" in done.stderr
        assert snapshot(project, *EVALUATE_OUTPUTS) == before
        assert list(status(project)) == ["evaluate"]
    finally:
        pairs.write_text(good, encoding="utf-8")
    fingerprint(project)
    assert status(project) == {}


@pytest.mark.slow
def test_a_bad_extract_layer_keeps_the_embeddings_and_stays_stale(project: Path) -> None:
    before = snapshot(project, "embeddings")
    params_file = project / "params.yaml"
    good = params_file.read_text(encoding="utf-8")
    try:
        params_file.write_text(good.replace("layers: last", "layers: 99"), encoding="utf-8")
        done = dvc(project, "repro", check=False)
        assert "failed to reproduce 'extract'" in done.stderr
        assert snapshot(project, "embeddings") == before
        assert status(project) == {"extract": [{"changed deps": {"params.yaml": {"extract": "modified"}}}]}
    finally:
        params_file.write_text(good, encoding="utf-8")
    assert status(project) == {}


# --- the fingerprints themselves (no DVC) ---


def test_a_folder_fingerprint_changes_with_any_file_name_or_content(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a").write_text("1")
    first = path_fingerprint(tmp_path / "m")
    (tmp_path / "m" / "a").write_text("2")
    second = path_fingerprint(tmp_path / "m")
    (tmp_path / "m" / "a").rename(tmp_path / "m" / "b")
    third = path_fingerprint(tmp_path / "m")
    assert len({first["md5"], second["md5"], third["md5"]}) == 3  # type: ignore[index]
    assert path_fingerprint(tmp_path / "nope") == {"path": str(tmp_path / "nope"), "missing": True}
    assert path_fingerprint(None) is None


def test_a_package_source_is_fingerprinted_by_its_distribution_version() -> None:
    import transformers

    found = source_fingerprint("pkg:transformers/models/bert")
    assert found == {
        "source": "pkg:transformers/models/bert",
        "distributions": {"transformers": transformers.__version__},
    }
    assert source_fingerprint("org/some-model") == {"source": "org/some-model"}


def test_every_path_param_is_fingerprinted_for_the_stage_that_reads_it(tmp_path: Path) -> None:
    names = ("tr.csv", "va.csv", "te.csv", "v.txt", "w.txt", "s.tsv", "a.txt")
    files = {name: tmp_path / name for name in names}
    for f in files.values():
        f.write_text(f.name)
    params = parse_params(
        {
            "model": {"source": str(tmp_path)},
            "prepare": {
                "input": None,
                "train_file": str(files["tr.csv"]),
                "validation_file": str(files["va.csv"]),
                "test_file": str(files["te.csv"]),
            },
            "extract": {"vector_files": [str(files["v.txt"])], "extra_words": [str(files["w.txt"])]},
            "evaluate": {"similarity_files": [str(files["s.tsv"])], "analogy_files": [str(files["a.txt"])]},
        }
    )
    found = json.dumps(stage_fingerprints(params))
    for f in files.values():
        assert hashlib.md5(f.read_bytes()).hexdigest() in found


def test_a_stage_refuses_to_run_on_a_stale_fingerprint_and_names_the_key(tmp_path: Path) -> None:
    from embedforge.core.errors import EmbedforgeError
    from embedforge.core.files import write_json
    from embedforge.fingerprint import check_current

    data = tmp_path / "reviews.csv"
    data.write_text("label,review\n1,good\n")
    params = parse_params({"prepare": {"input": str(data)}})
    folder = tmp_path / "fingerprints"
    for stage, found in stage_fingerprints(params).items():
        write_json(folder / f"{stage}.json", found)
    check_current("prepare", params, folder, {})  # current: no error
    data.write_text("label,review\n1,good\n0,bad\n")  # edited after the fingerprint stage ran
    with pytest.raises(EmbedforgeError) as err:
        check_current("prepare", params, folder, {})
    assert str(err.value) == (
        f"{folder / 'prepare.json'} is out of date (prepare.input changed since the `fingerprint` stage "
        "ran, which `dvc repro -s prepare` skips); run `dvc repro -s fingerprint prepare` or "
        "`dvc repro prepare`"
    )
    check_current("extract", params, folder, {})  # other stages' inputs did not change
    check_current("teacher", params, folder, {})  # a stage without a fingerprint file is not checked


@pytest.mark.slow
def test_run_sh_stops_a_stage_whose_fingerprint_is_stale_before_it_writes(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    path = Path(params["prepare"]["input"])
    backup = path.with_name(path.name + ".orig")
    shutil.copy(path, backup)
    saved = snapshot(project, "data/prepared", "metrics")
    try:
        _edit(path)  # and no fingerprint run: what `dvc repro -s prepare --force` would start from
        done = subprocess.run(
            ["sh", "stages/run.sh", "prepare"], cwd=project, env=_env(), capture_output=True, text=True
        )
    finally:
        os.replace(backup, path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: fingerprints/prepare.json is out of date")
    assert "dvc repro -s fingerprint prepare" in done.stderr
    assert snapshot(project, "data/prepared", "metrics") == saved
    assert status(project) == {}


@pytest.mark.slow
def test_queued_experiments_run_the_code_they_were_queued_with(project: Path, tmp_path: Path) -> None:
    """`dvc exp run --queue` then `--run-all`: each experiment runs in .dvc/tmp/exps/ with the src/ of its
    own snapshot, not the workspace's src/ nor HEAD's (the package is an editable install of another
    checkout). The queued code adds a key to headline.json; after queuing, the workspace code crashes."""
    repo = tmp_path / "repo"
    shutil.copytree(project, repo, symlinks=True)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "reproduced"], cwd=repo, check=True)
    outputs = repo / "src" / "embedforge" / "evaluate" / "outputs.py"
    committed = outputs.read_text(encoding="utf-8")
    best = '    out["best"] = best\n'
    marked = committed.replace(best, best + '    out["queued_code"] = 1\n')
    assert marked != committed
    outputs.write_text(marked, encoding="utf-8")
    quick = ["-S", "+evaluate.curve_matrices=[]"]  # (`+`: a key the tiny params.yaml leaves out)
    dvc(repo, "exp", "run", "--queue", "-n", "fast", "-S", "evaluate.probe_epochs=2", *quick)
    dvc(repo, "exp", "run", "--queue", "-n", "longer", "-S", "evaluate.probe_epochs=3", *quick)
    outputs.write_text(committed, encoding="utf-8")
    package = repo / "src" / "embedforge" / "__init__.py"
    package.write_text('raise SystemExit("the workspace code ran")\n' + package.read_text(encoding="utf-8"))

    # DVC starts the queue worker as `dvc` from PATH (dvc_task ManagedProcess): without it on PATH the
    # worker dies silently and --run-all waits for ever, so this one command needs the venv on PATH.
    env = {**_env(), "PATH": f"{VENV / 'bin'}{os.pathsep}{_env()['PATH']}"}
    done = subprocess.run(
        [str(VENV / "bin" / "dvc"), "exp", "run", "--run-all"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    exps = {e["name"]: e for rev in shown for e in (rev.get("experiments") or [])}
    assert set(exps) == {"fast", "longer"}
    for name, exp in exps.items():
        assert exp["executor"]["state"] == "success", name
        data = exp["revs"][0]["data"]
        assert data["metrics"]["metrics/headline.json"]["data"]["queued_code"] == 1, name  # as queued
        assert data["params"]["params.yaml"]["data"]["evaluate"]["probe_epochs"] == (
            2 if name == "fast" else 3
        )
    assert set(dvc(repo, "exp", "list", "--name-only").stdout.split()) == {"fast", "longer"}


@pytest.mark.slow
def test_temp_experiments_leave_the_workspace_and_the_way_back_to_head_leaves_status_clean(
    project: Path, tmp_path: Path
) -> None:
    """`dvc exp run --temp` runs apart and changes nothing here. A plain `dvc exp run` leaves its results in
    the workspace; `git checkout .`, `git clean` of the output folders and `dvc checkout` bring HEAD's files
    back but not the git-ignored, uncached fingerprints/, so a stage stays stale until `dvc repro
    fingerprint` rewrites them (the experiments guide's one-liner)."""
    repo = tmp_path / "repo"
    shutil.copytree(project, repo, symlinks=True)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "reproduced"], cwd=repo, check=True)
    tracked = ("params.yaml", "dvc.lock", "metrics", "plots", "fingerprints", "embeddings")
    at_head = snapshot(repo, *tracked)
    pairs = Path(
        yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))["evaluate"]["similarity_files"][0]
    )
    more = tmp_path / "more_pairs.tsv"
    more.write_text(
        "".join(pairs.read_text(encoding="utf-8").splitlines(keepends=True)[::2]), encoding="utf-8"
    )
    change = ["-S", f"evaluate.similarity_files=[{pairs},{more}]", "-S", "+evaluate.curve_matrices=[]"]

    dvc(repo, "exp", "run", "--temp", "-n", "apart", *change)
    assert snapshot(repo, *tracked) == at_head and status(repo) == {}
    assert "apart" in dvc(repo, "exp", "list", "--name-only").stdout

    dvc(repo, "exp", "run", "-n", "here", *change)  # applied to the workspace
    assert snapshot(repo, "fingerprints") != {
        k: v for k, v in at_head.items() if k.startswith("fingerprints/")
    }
    # the guide's one-liner, step by step: git's files, then the files the experiment added to the
    # git-tracked output folders (a scatter plot of the new set), then DVC's cached outputs ...
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=repo, check=True)
    subprocess.run(["git", "clean", "-fdq", "metrics", "plots", "dvclive"], cwd=repo, check=True)
    dvc(repo, "checkout")
    stale = status(repo)
    assert list(stale) == ["evaluate"]
    assert stale["evaluate"] == [{"changed deps": {"fingerprints/evaluate.json": "modified"}}]
    dvc(repo, "repro", "fingerprint")  # ... and the uncached fingerprints
    assert status(repo) == {}
    assert snapshot(repo, *tracked) == at_head
