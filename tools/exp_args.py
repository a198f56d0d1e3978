"""Print a partial params file (such as params/en.yaml) as `dvc exp run` arguments, `-S key=value` each:

    dvc exp run -n en-minilm $(python tools/exp_args.py params/en.yaml)

Values are written as YAML flow text (null, [a,b]), which `-S` reads back typed. The file is checked
against the params schema first, so a typo is a one-line error rather than an experiment that fails later.
Values with spaces would be split by the shell: quote such a key by hand instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import load_params
from embedforge.core.schema import read_yaml


def flow(value: Any) -> str:
    """YAML flow text without spaces between list items: null, 2e-05, [cls,input]."""
    if isinstance(value, list):
        return "[" + ",".join(flow(v) for v in value) + "]"
    return yaml.safe_dump(value, width=10**6).removesuffix("\n").removesuffix("\n...")


def exp_args(data: dict[str, Any]) -> list[str]:
    """`-S section.key=value` per key of a {section: {key: value}} mapping, in file order."""
    return [a for s, values in data.items() for k, v in values.items() for a in ("-S", f"{s}.{k}={flow(v)}")]


def main(name: str) -> None:
    path = Path(name)
    try:
        load_params(path)  # unknown keys, wrong types: one line
        sys.stdout.write(" ".join(exp_args(read_yaml(path))) + "\n")
    except EmbedforgeError as e:
        sys.exit(f"error: {path}: {e}")


if __name__ == "__main__":
    main(*sys.argv[1:])
