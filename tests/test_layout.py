"""The layout keeps its promises: a stage's dvc.yaml code deps are exactly the modules it imports; no import
cycle; core imports no stage package."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DEPS_TOOL = runpy.run_path(str(ROOT / "tools" / "dvc_deps.py"))  # the import walk that writes dvc.yaml's deps
imports = DEPS_TOOL["imports"]
closure = DEPS_TOOL["closure"]
code_deps = DEPS_TOOL["code_deps"]
is_code = DEPS_TOOL["is_code"]

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_code_deps_are_exactly_the_modules_it_imports(stage: str) -> None:
    have = [d for d in STAGES[stage].get("deps", []) if is_code(d)]
    assert have == code_deps(stage), f"{stage}: dvc.yaml is out of date; run python tools/dvc_deps.py --write"
    if stage != "fingerprint":  # it runs every time, so it declares no code deps
        assert f"stages/{stage}.py" in have, f"{stage}: its script is not a dependency"
        assert all((ROOT / d).exists() for d in have)


def test_the_deps_tool_check_passes_on_the_committed_dvc_yaml() -> None:
    assert DEPS_TOOL["main"](["--check"]) == 0


def test_the_deps_tool_reports_in_one_line_and_rewrites_keeping_the_other_deps_and_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    stale = tmp_path / "dvc.yaml"
    text = good.replace("      - src/embedforge/core/curves.py\n", "", 1)  # ceiling's
    text = text.replace("      - src/embedforge/evaluate/__init__.py\n", "      - src/embedforge/evaluate\n")
    stale.write_text(text, encoding="utf-8")
    assert DEPS_TOOL["main"](["--check"], stale) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "+src/embedforge/core/curves.py" in err
    assert DEPS_TOOL["main"](["--write"], stale) == 0
    assert stale.read_text(encoding="utf-8") == good


def test_the_import_walk_skips_type_only_imports_and_sees_function_bodies(tmp_path: Path) -> None:
    script = tmp_path / "stage.py"
    script.write_text(
        "from typing import TYPE_CHECKING\n"
        "from embedforge.core.errors import EmbedforgeError\n"
        "if TYPE_CHECKING:\n"
        "    from embedforge.core.catalog import Catalog\n"
        "def run() -> None:\n"
        "    from embedforge.core.device import CPU\n",
        encoding="utf-8",
    )
    core = SRC / "embedforge" / "core"
    reached = closure(script)
    assert core / "errors.py" in reached and core / "device.py" in reached
    assert core / "catalog.py" not in reached
    # the package on the way runs only its module-level code: its lazy re-exports are not reached
    assert SRC / "embedforge" / "__init__.py" in reached and core / "embedding.py" not in reached


def test_no_import_cycle_between_modules() -> None:
    modules = sorted(SRC.rglob("*.py"))
    graph = {m: imports(m, parents=False) - {m} for m in modules}

    def reaches(a: Path, b: Path) -> bool:
        seen, todo = set(), [a]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == b:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = [(a.relative_to(SRC), b.relative_to(SRC)) for a in modules for b in graph[a] if reaches(b, a)]
    assert not cycles, f"import cycles: {cycles}"


PACKAGE = SRC / "embedforge"
# one per stage with code of its own; `fingerprint` is a module, the others packages
STAGE_CODE = [PACKAGE / p for p in ("prepare", "finetune", "extract", "evaluate", "export")] + [
    PACKAGE / "fingerprint.py"
]


def _owner(module: Path) -> Path | None:
    return next((s for s in STAGE_CODE if module == s or s in module.parents), None)


def test_core_imports_no_stage_package() -> None:
    for module in (PACKAGE / "core").glob("*.py"):
        bad = [d for d in imports(module) if _owner(d)]
        assert not bad, f"{module.name} reaches up into a stage package: {bad}"


def test_stage_code_imports_only_core_and_itself() -> None:
    assert all(s.exists() for s in STAGE_CODE)
    for owner in STAGE_CODE:
        modules = sorted(owner.rglob("*.py")) if owner.is_dir() else [owner]
        for module in modules:
            bad = [d for d in imports(module) if _owner(d) not in (None, owner)]
            assert not bad, f"{module.relative_to(SRC)} imports another stage's code: {bad}"


def test_loading_an_embedding_does_not_import_transformers() -> None:
    code = (
        "import sys\n"
        "from embedforge import WordVectors, load_embedding\n"
        "assert 'transformers' not in sys.modules, 'transformers imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_test_named_in_the_docs_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = "\n".join(doc.read_text(encoding="utf-8") for doc in docs)
    named = set(re.findall(r"tests/(test_\w+\.py)::(\w+)", text))
    assert named, "the docs name no tests"
    missing = [
        f"{file}::{name}"
        for file, name in sorted(named)
        if not re.search(rf"^def {name}\(", (ROOT / "tests" / file).read_text(encoding="utf-8"), re.M)
    ]
    assert not missing, f"docs name tests that do not exist: {missing}"
