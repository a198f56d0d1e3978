"""The layers of `embedforge.evaluate`: compute below writing below rendering, one owner of the file keys."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "embedforge" / "evaluate"
RENDER = PACKAGE / "render"
WRITERS = {"outputs", "__init__"}  # write the files and call the renderers; no compute module imports them
# what a renderer may import from the evaluate package: the file keys, and the other renderers
RENDER_MAY_IMPORT = re.compile(r"embedforge\.evaluate\.(files|render(\..+)?)$")


def _imports(path: Path) -> set[str]:
    """The embedforge modules a module imports (at any depth of its code, TYPE_CHECKING blocks too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("embedforge")}


def _compute_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.glob("*.py") if p.stem not in WRITERS | {"files"})


@pytest.mark.parametrize("path", sorted(RENDER.glob("*.py")), ids=lambda p: p.stem)
def test_a_renderer_imports_only_files_core_and_renderers(path: Path) -> None:
    wrong = {m for m in _imports(path) if not (m.startswith("embedforge.core") or RENDER_MAY_IMPORT.match(m))}
    assert not wrong, f"{path.name} imports {sorted(wrong)}: renderers read files, not results"


@pytest.mark.parametrize("path", _compute_modules(), ids=lambda p: p.stem)
def test_a_compute_module_imports_no_writer_or_renderer(path: Path) -> None:
    upward = {
        m
        for m in _imports(path)
        if m.startswith("embedforge.evaluate.render")
        or m in {f"embedforge.evaluate.{w}" for w in WRITERS} | {"embedforge.evaluate"}
    }
    assert not upward, f"{path.name} imports {sorted(upward)}"


def test_files_imports_only_core() -> None:
    assert all(m.startswith("embedforge.core") for m in _imports(PACKAGE / "files.py"))


def test_metrics_keys_and_file_names_are_defined_in_files_only() -> None:
    """A key or file name of metrics/ or plots/ is assigned as a constant in `files.py` and nowhere else."""
    names = {"CAPS", "CURVES", "CEILING", "CAPPED", "LABELS", "CONFUSION", "ROWS_KEY", "VARIANTS"}
    names |= {"HEADLINE_FILE", "RECOMMENDED_KEY", "SELECTION_KEY", "CURVES_PNG", "CEILING_ROW"}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "files.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assigned = {
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        assert not assigned & names, f"{path.relative_to(PACKAGE)} defines {sorted(assigned & names)}"
        assert not re.search(r'"[\w.]+\.(json|md|csv|png)"', path.read_text(encoding="utf-8")), path.name


def test_no_module_spells_a_strategy_name_or_the_tutorial_matrix() -> None:
    """Strategy and source names come from `core.catalog` (`Strategy`, `Source`, `TUTORIAL_MATRIX`)."""
    literal = re.compile(r'"(cls|input|decontext|aggregate|vectors|word2vec|cls_finetuned|base)"')
    for path in sorted(PACKAGE.rglob("*.py")):
        hits = literal.findall(path.read_text(encoding="utf-8"))
        assert not hits, f"{path.relative_to(PACKAGE)} spells {hits}"
