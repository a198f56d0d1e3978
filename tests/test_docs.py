"""The README documents every key of params.yaml in its section's parameter table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from embedforge.core import params as schema

ROOT = Path(__file__).resolve().parents[1]

# The heading that opens each section's table in README.md.
TABLE_HEADINGS = {
    "model": "### `model`",
    "prepare": "### `prepare`",
    "finetune": "### Parameters (`params.yaml`, section `finetune`)",
    "ceiling": "#### The ceiling: the transformer fine-tuned on the same subsets (stage `ceiling`)",
    "extract": "### Parameters (`extract:` in params.yaml)",
    "export": "### Exports",
    "evaluate": "### Parameters (`evaluate` section of params.yaml)",
}


def documented_keys(heading: str) -> set[str]:
    """The backticked names in the first column of the tables between `heading` and the next heading."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert heading in lines, f"README.md has no heading {heading!r}"
    keys: set[str] = set()
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            keys.update(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return keys


def section_fields(section: str) -> list[str]:
    """The keys of one params.yaml section, from the schema."""
    cls = getattr(schema, f"{section.capitalize()}Params")
    return [f.name for f in dataclasses.fields(cls)]


def test_every_section_has_a_table() -> None:
    assert sorted(TABLE_HEADINGS) == sorted(f.name for f in dataclasses.fields(schema.Params))


@pytest.mark.parametrize("section", sorted(TABLE_HEADINGS))
def test_every_key_is_documented(section: str) -> None:
    missing = set(section_fields(section)) - documented_keys(TABLE_HEADINGS[section])
    assert not missing, f"README's {section} table lacks rows for {sorted(missing)}"
