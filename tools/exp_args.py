"""Print a partial params file (such as params/en.yaml) as `dvc exp run` arguments, `-S key=value` each:

    dvc exp run -n quick $(python tools/exp_args.py params/quick.yaml)
    dvc exp run -n en-minilm $(python tools/exp_args.py params/en.yaml --data /path/to/data)

Values are written as YAML flow text (null, [a,b]), which `-S` reads back typed. The file is checked
against the params schema first, so a typo is a one-line error rather than an experiment that fails later.
Values with spaces would be split by the shell: quote such a key by hand instead.

Data that is not in the repository is named relative to `{data}`
(`"{data}/classification/en/sst2_dev.csv"`): `--data DIR` replaces it with DIR made absolute (so the paths
also hold inside `dvc exp run --temp` and `--queue`, which run elsewhere), and every path so made must
exist: a profile whose data is missing fails here, before DVC starts, not half-way through the pipeline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import parse_params
from embedforge.core.schema import read_yaml

DATA = "{data}"  # the placeholder a profile writes in front of a path outside the repository


def flow(value: Any) -> str:
    """YAML flow text without spaces between list items: null, 2e-05, [cls,input]."""
    if isinstance(value, list):
        return "[" + ",".join(flow(v) for v in value) + "]"
    return yaml.safe_dump(value, width=10**6).removesuffix("\n").removesuffix("\n...")


def _flat(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """(dotted key, value) per key of a params mapping: `section.key` in a section, `lr` at the top level."""
    return [
        (f"{s}.{k}", v)
        for s, values in data.items()
        for k, v in (values.items() if isinstance(values, dict) else [])
    ] + [(s, v) for s, v in data.items() if not isinstance(v, dict)]


def exp_args(data: dict[str, Any]) -> list[str]:
    """`-S key=value` per key of a partial params mapping, sections in file order, top-level keys last."""
    return [a for key, value in _flat(data) for a in ("-S", f"{key}={flow(value)}")]


def data_paths(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted key, value) of every string value (or list item) that names `{data}`."""
    found = []
    for key, value in _flat(data):
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and DATA in item:
                found.append((key, item))
    return found


def with_data(data: Any, root: str | None) -> Any:
    """`data` with `{data}` replaced by `root` made absolute; a one-line error when a profile needs `--data`
    and has none, or when a path it makes does not exist."""
    needed = data_paths(data) if isinstance(data, dict) else []
    if not needed:
        return data
    if root is None:
        key, value = needed[0]
        raise EmbedforgeError(
            f"{key} = {value!r} is relative to {DATA}; pass --data DIR, the folder that holds it"
        )
    base = Path(root).expanduser().resolve()

    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.replace(DATA, str(base)) if isinstance(value, str) else value

    for key, value in needed:
        path = Path(value.replace(DATA, str(base)))
        if not path.exists():
            raise EmbedforgeError(
                f"{key}: {path} not found (--data {root}); expected the profile's data there"
            )
    return fill(data)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="A partial params file as `dvc exp run -S` arguments.")
    parser.add_argument("profile", help="a partial params file, e.g. params/en.yaml")
    parser.add_argument("--data", help=f"the folder that {DATA} in the profile's paths stands for")
    args = parser.parse_args(argv)
    path = Path(args.profile)
    try:
        if not path.is_file():
            raise EmbedforgeError("parameters file not found")
        data = with_data(read_yaml(path), args.data)
        parse_params(data)  # unknown keys, wrong types: one line
        sys.stdout.write(" ".join(exp_args(data)) + "\n")
    except EmbedforgeError as e:
        sys.exit(f"error: {path}: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
