"""The layout keeps its promises: a stage's dvc.yaml deps cover every module it imports; no import cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """The source file of an `embedforge` module (package -> its __init__.py), None outside the package."""
    if not name.startswith("embedforge"):
        return None
    base = SRC / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports(path: Path, parents: bool = True) -> set[Path]:
    """The embedforge module files `path` imports directly (with `parents`, also the packages on the way)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            files = [module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)]
            files = [f for f in files if f is not None]
            found.update(files if parents else files[-1:])
    return found


def closure(start: Path) -> set[Path]:
    """Every embedforge module reachable from `start` through imports."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        for dep in imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_module_it_imports(stage: str) -> None:
    deps = [ROOT / d for d in STAGES[stage].get("deps", [])]
    script = ROOT / "stages" / f"{stage}.py"
    if stage != "fingerprint":  # it runs every time, so it declares no code deps
        assert script in deps, f"{stage}: its script is not a dependency"
    uncovered = [
        str(m.relative_to(ROOT)) for m in closure(script) if not any(m == d or d in m.parents for d in deps)
    ]
    assert stage == "fingerprint" or not uncovered, f"{stage} imports modules outside its deps: {uncovered}"


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


def test_core_imports_no_stage_package() -> None:
    stage_packages = {SRC / "embedforge" / p for p in ("prepare", "finetune", "extract", "evaluate")}
    for module in (SRC / "embedforge" / "core").glob("*.py"):
        bad = [d for d in imports(module) if any(p in d.parents for p in stage_packages)]
        assert not bad, f"{module.name} reaches up into a stage package: {bad}"


def test_every_test_named_in_the_docs_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(doc.read_text(encoding="utf-8") for doc in docs)
    named = set(re.findall(r"tests/(test_\w+\.py)::(\w+)", text))
    assert named, "the docs name no tests"
    missing = [
        f"{file}::{name}"
        for file, name in sorted(named)
        if not re.search(rf"^def {name}\(", (ROOT / "tests" / file).read_text(encoding="utf-8"), re.M)
    ]
    assert not missing, f"docs name tests that do not exist: {missing}"
