"""Keep each stage's code deps in dvc.yaml equal to the code the stage runs:

    python tools/dvc_deps.py --check    # exit 1 with a one-line diff when dvc.yaml is out of date
    python tools/dvc_deps.py --write    # rewrite the code entries of every stage's deps

A stage's code is `stages/<stage>.py` and every `embedforge` module file its imports reach (plus the data
folders of the packages they live in, such as fonts), so an edit re-runs exactly the stages that import the
edited module. The other deps (models, data, fingerprints) are kept as written, with their comments.
The `fingerprint` stage has no code deps: it runs every time.

Reachable means what Python would execute: imports inside functions count (they run when called), imports
under `if TYPE_CHECKING:` do not, and a package passed through on the way to a module (`embedforge` for
`from embedforge.core.files import ...`) contributes only its module-level imports.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DVC_YAML = ROOT / "dvc.yaml"
ALWAYS_RUNS = "fingerprint"  # declares no code deps


def module_file(name: str) -> Path | None:
    """The source file of an `embedforge` module (package -> its __init__.py), None outside the package."""
    if not name.startswith("embedforge"):
        return None
    base = SRC / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    nodes: Iterable[ast.AST], *, bodies: bool, typing_only: bool
) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements among `nodes` and below; without `bodies`, none inside functions; without
    `typing_only`, none under `if TYPE_CHECKING:` (its `else:` branch still counts)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not bodies and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        elif not typing_only and isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.orelse, bodies=bodies, typing_only=typing_only)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), bodies=bodies, typing_only=typing_only)


def _targets(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[list[Path], bool]]:
    """Per dotted name the statement imports, the embedforge module files it executes (packages first,
    the named module last) and whether all of them are reachable: `import a.b` binds `a`, while a package
    passed through by `from a.b import c` runs only its module-level code."""
    if isinstance(node, ast.Import):
        dotted = [(a.name, True) for a in node.names]
    elif node.module and node.level == 0:
        dotted = [(node.module, False)] + [(f"{node.module}.{a.name}", False) for a in node.names]
    else:
        return
    for name, bound in dotted:
        parts = name.split(".")
        files = [f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i])))]
        if files:
            yield files, bound


def imports(path: Path, parents: bool = True) -> set[Path]:
    """Every embedforge module file an import statement in `path` names (with `parents`, also the packages on
    the way), wherever the statement is: the static import graph, for layout rules such as "no cycle"."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[Path] = set()
    for node in _import_nodes(tree.body, bodies=True, typing_only=True):
        for files, _ in _targets(node):
            found.update(files if parents else files[-1:])
    return found


def closure(start: Path) -> set[Path]:
    """Every embedforge module file that running `start` can execute (see the module docstring)."""
    full: set[Path] = set()  # whole module reachable
    top: set[Path] = set()  # only its module-level code runs
    todo: list[tuple[Path, bool]] = [(start, True)]
    while todo:
        path, named = todo.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _import_nodes(tree.body, bodies=named, typing_only=False):
            for files, bound in _targets(node):
                for i, dep in enumerate(files):
                    dep_named = bound or i == len(files) - 1
                    if dep in full or (dep in top and not dep_named):
                        continue
                    (full if dep_named else top).add(dep)
                    todo.append((dep, dep_named))
    return (full | top) - {start}


def data_folders(modules: set[Path]) -> set[Path]:
    """Folders of non-Python files (no __init__.py) inside the packages that hold `modules`."""
    return {
        d
        for package in {m.parent for m in modules}
        for d in package.iterdir()
        if d.is_dir() and d.name != "__pycache__" and not (d / "__init__.py").exists()
    }


def code_deps(stage: str) -> list[str]:
    """The code entries of `stage`'s deps, as dvc.yaml writes them: its script, then sorted paths."""
    if stage == ALWAYS_RUNS:
        return []
    script = ROOT / "stages" / f"{stage}.py"
    modules = closure(script)
    paths = sorted(str(p.relative_to(ROOT)) for p in modules | data_folders(modules))
    return [str(script.relative_to(ROOT)), *paths]


def is_code(dep: str) -> bool:
    """A dep this tool owns: a stage script or anything under src/."""
    return dep.startswith("src/") or (dep.startswith("stages/") and dep.endswith(".py"))


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments and layout survive
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    yaml.preserve_quotes = True
    return yaml


def differences(stages: dict[str, Any]) -> list[str]:
    """`stage: +added -removed` for each stage whose code deps differ from its imports."""
    out = []
    for name, stage in stages.items():
        have = [str(d) for d in stage.get("deps", []) if is_code(str(d))]
        want = code_deps(name)
        if have != want:
            added = [f"+{d}" for d in want if d not in have]
            removed = [f"-{d}" for d in have if d not in want]
            out.append(f"{name}: {' '.join(added + removed) or 'order'}")
    return out


def rewrite(stages: dict[str, Any]) -> None:
    """Replace each stage's code deps with the generated ones, ahead of its other deps (comments kept)."""
    from ruamel.yaml.comments import CommentedSeq

    for name, stage in stages.items():
        deps = stage.get("deps")
        want = code_deps(name)
        if deps is None:
            if want:
                stage.insert(1, "deps", CommentedSeq(want))
            continue
        comments = {str(deps[i]): c for i, c in deps.ca.items.items() if not is_code(str(deps[i]))}
        others = [d for d in deps if not is_code(str(d))]
        deps.clear()
        deps.ca.items.clear()
        deps.extend(want + others)
        for i, dep in enumerate(deps):
            if str(dep) in comments:
                deps.ca.items[i] = comments[str(dep)]


def main(argv: list[str] | None = None, path: Path = DVC_YAML) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml is out of date")
    mode.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    args = parser.parse_args(argv)
    yaml = _yaml()
    doc = yaml.load(path)
    diff = differences(doc["stages"])
    if args.check:
        if diff:
            fix = "run python tools/dvc_deps.py --write"
            sys.stderr.write(f"{path.name}: code deps out of date ({'; '.join(diff)}); {fix}\n")
            return 1
        return 0
    if diff:
        rewrite(doc["stages"])
        with path.open("w", encoding="utf-8") as f:
            yaml.dump(doc, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
