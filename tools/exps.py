"""The experiments side by side in a 120-column terminal: `dvc exp show --only-changed`, with every column
dropped but the experiment, the four headline numbers and the parameters (those that differ: the rest are
dropped by --only-changed).

    make exps                          # = python tools/exps.py
    python tools/exps.py -A --md       # more arguments go to `dvc exp show` (all commits, Markdown, ...)
    python tools/exps.py --print       # print the command instead of running it

The parameter columns come from the params schema (every section, and the top-level keys such as `lr`), so
a new section shows without editing a regex; the numbers are metrics/headline.json's summary keys.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
import typing
from pathlib import Path

from embedforge.core.params import Params

# headline.json's summary numbers (embedforge.evaluate.outputs.headline); DVC orders the columns
HEADLINE_COLUMNS = ("similarity", "analogy", "classifier", "probe")


def drop_regex() -> str:
    """A `--drop` regex that keeps `Experiment`, HEADLINE_COLUMNS and every params column."""
    hints = typing.get_type_hints(Params)
    fields = dataclasses.fields(Params)
    sections = [f.name for f in fields if dataclasses.is_dataclass(hints[f.name])]
    top_level = [f.name for f in fields if not dataclasses.is_dataclass(hints[f.name])]
    exact = "|".join(["Experiment", *HEADLINE_COLUMNS, *top_level])
    return f"^(?!(?:{exact})$|(?:{'|'.join(sections)})\\.)"


def command(extra: list[str]) -> list[str]:
    """`dvc exp show` (the one beside this interpreter) with the columns above, then `extra`."""
    dvc = Path(sys.executable).with_name("dvc")
    program = str(dvc) if dvc.exists() else "dvc"
    return [program, "exp", "show", "--only-changed", "--drop", drop_regex(), *extra]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--print"]:
        sys.stdout.write(shlex.join(["dvc", *command(argv[1:])[1:]]) + "\n")
        return 0
    return subprocess.run(command(argv)).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
