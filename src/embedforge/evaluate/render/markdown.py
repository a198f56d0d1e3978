"""Markdown tables and numbers, the one way every rendered table is built."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def row(cells: Iterable[object]) -> str:
    """One table row; a `|` inside a cell is escaped so that it cannot split the cell."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def table(headers: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table as lines: the header, the separator, one line per row."""
    return [row(headers), "|---" * len(headers) + "|", *(row(r) for r in rows)]


def number(
    value: float | None, best: bool = False, coverage: float | None = 1.0, present: bool = True
) -> str:
    """A table cell: 3 decimals (`–` for no value, `n/a` for a key absent from the file), bold when best,
    the coverage appended when below 100 %."""
    if not present:
        return "n/a"
    text = "–" if value is None else f"{value:.3f}"
    if best and value is not None:
        text = f"**{text}**"
    if coverage is not None and coverage < 0.995:
        text += f" ({coverage:.0%})"
    return text
