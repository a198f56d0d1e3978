"""The docs: the parameter reference is the one the schema generates, and the site builds strict offline."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from embedforge.core import params as schema

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = runpy.run_path(str(ROOT / "tools" / "params_reference.py"))


def test_the_committed_params_reference_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "reference" / "params.md").read_text(encoding="utf-8")
    stale = "docs/reference/params.md is stale: run tools/params_reference.py"
    assert committed == GENERATOR["render"](), stale
    assert GENERATOR["main"](["--check"]) == 0


def test_the_reference_has_a_row_for_every_key_of_every_section() -> None:
    page = GENERATOR["render"]()
    for section in dataclasses.fields(schema.Params):
        if not dataclasses.is_dataclass(section.default):  # a top-level key: a row of "Top level"
            assert f"| `{section.name}` |" in page.split("## `model`")[0], f"{section.name} has no row"
            continue
        assert f"## `{section.name}`" in page
        for key in dataclasses.fields(type(section.default)):
            assert f"| `{key.name}` |" in page, f"{section.name}.{key.name} has no row"


def test_a_field_s_range_and_help_come_from_its_metadata() -> None:
    @dataclasses.dataclass(frozen=True)
    class Demo:
        """A demo section."""

        rate: float = dataclasses.field(default=0.5, metadata={"gt": 0.0, "max": 1.0, "help": "a | rate"})
        kind: str | None = None

    table = "\n".join(GENERATOR["section_table"]("demo", Demo))
    assert "| `rate` | float | `0.5` | > 0.0, ≤ 1.0 | a \\| rate |" in table
    assert "| `kind` | str or null | `null` |  |  |" in table


def test_check_mode_fails_on_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "params.md"
    stale.write_text("# old\n", encoding="utf-8")
    main = GENERATOR["main"]
    monkeypatch.setitem(main.__globals__, "PAGE", stale)
    monkeypatch.setitem(main.__globals__, "ROOT", tmp_path)
    assert main(["--check"]) == 1
    assert main([]) == 0 and main(["--check"]) == 0


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="mkdocs (the dev extra) is not installed"
)
def test_the_site_builds_strict_and_offline(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "params" / "index.html").is_file()
