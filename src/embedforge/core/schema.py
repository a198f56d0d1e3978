"""A small validator for configuration dataclasses, and YAML read exactly as DVC reads it.

A schema is a tree of frozen dataclasses. Each field is declared with `setting(default, help=..., min=...)`:
the help text (shown in the generated parameter reference) and the range limits (`min`, `max`, `gt`) live in
the field's metadata, so validation and documentation come from one declaration. `build` checks a parsed
mapping against the schema: types (scalars, `Literal`, unions, lists, nested dataclasses), ranges, finite
numbers, strict YAML 1.2 booleans; an unknown key is an error that names the closest real key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from embedforge.core.errors import EmbedforgeError

T = TypeVar("T")
# numpy, torch and transformers.set_seed all accept exactly this range.
SEED_RANGE = {"min": 0, "max": 2**32 - 1}
# YAML 1.1 booleans that YAML 1.2 (DVC, and this reader) reads as text.
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}
FILE = "params.yaml"  # how errors name the file


def setting(default: Any, *, help: str, **limits: Any) -> Any:
    """A dataclass field with a default, its help text and optional range limits (min, max, gt)."""
    metadata = {"help": help, **limits}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: typing.cast(Any, type(default))(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def seed_setting(default: int, *, help: str) -> Any:
    """A random seed field: an integer in SEED_RANGE."""
    return setting(default, help=help, **SEED_RANGE)


def type_name(tp: Any) -> str:
    """A readable name for a type hint, used in error messages."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


def _invalid(value: Any, tp: Any, key: str) -> EmbedforgeError:
    return EmbedforgeError(f"{FILE}: {key} = {value!r} is not valid; expected {type_name(tp)}")


class UnknownKeyError(EmbedforgeError):
    """A key the schema does not have; `build` adds the closest real key to the message."""

    def __init__(self, key: str, expected: list[str]) -> None:
        super().__init__(f"{FILE}: unknown key {key!r}; expected one of: {', '.join(expected)}")
        self.key = key


def _check_union(value: Any, tp: Any, key: str) -> Any:
    """The first member type that accepts `value` (null only where the union allows it)."""
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _check(value, arg, key)
        except EmbedforgeError:
            continue
    raise _invalid(value, tp, key)


def _check_bool(value: Any, key: str) -> bool:
    if isinstance(value, str) and value.lower() in _YAML11_BOOLS:
        raise EmbedforgeError(
            f"{FILE}: {key} = {value!r} is not valid; expected true or false "
            "(params.yaml is YAML 1.2, as DVC reads and writes it: yes/no/on/off are text)"
        )
    if not isinstance(value, bool):
        raise _invalid(value, bool, key)
    return value


def _check_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(value, int, key)
    return value


def _check_float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(value, float, key)
    # NaN passes every range check and inf trains a model of NaN weights: neither is a setting.
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise EmbedforgeError(f"{FILE}: {key} = {value!r} is not valid; expected a finite number")
    return number


def _check_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _invalid(value, str, key)
    return value


_SCALARS: dict[Any, Callable[[Any, str], Any]] = {
    bool: _check_bool,
    int: _check_int,
    float: _check_float,
    str: _check_str,
}


def _check(value: Any, tp: Any, key: str) -> Any:
    """Return `value` converted to `tp`, or raise EmbedforgeError naming `key`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise _invalid(value, tp, key)
        return value
    if origin in (Union, types.UnionType):
        return _check_union(value, tp, key)
    if origin is list:
        if not isinstance(value, list):
            raise _invalid(value, tp, key)
        return [_check(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _invalid(value, tp, key)
        return _build(typing.cast(type, tp), value, key)
    if tp in _SCALARS:
        return _SCALARS[tp](value, key)
    raise TypeError(f"unsupported type hint {tp!r} for {key}")


def _check_range(value: Any, limits: dict[str, Any], key: str) -> None:
    """Raise if a number is outside the limits declared in the field's metadata."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if "min" in limits and value < limits["min"]:
        raise EmbedforgeError(f"{FILE}: {key} = {value!r} is out of range; expected >= {limits['min']}")
    if "gt" in limits and value <= limits["gt"]:
        raise EmbedforgeError(f"{FILE}: {key} = {value!r} is out of range; expected > {limits['gt']}")
    if "max" in limits and value > limits["max"]:
        raise EmbedforgeError(f"{FILE}: {key} = {value!r} is out of range; expected <= {limits['max']}")


def _build(cls: type[T], data: dict[str, Any], prefix: str) -> T:
    """Validate a mapping against dataclass `cls`; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UnknownKeyError(f"{prefix}.{unknown[0]}" if prefix else unknown[0], sorted(fields))
    values = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        checked = _check(value, hints[name], key)
        _check_range(checked, dict(fields[name].metadata), key)
        values[name] = checked
    return cls(**values)


def keys(cls: type, prefix: str = "") -> Iterator[str]:
    """Every key of a schema, dotted (`lr`, `finetune`, `finetune.seed`, ...), in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        yield key
        if dataclasses.is_dataclass(hints[f.name]):
            yield from keys(hints[f.name], key)


def closest_key(key: str, known: list[str]) -> str | None:
    """The real key a mistyped or misplaced `key` most likely means: the same name in another section
    (`finetune.lr` -> `lr`), else the most similar name in its own section, else in any section."""
    section, _, name = key.rpartition(".")

    def leaf(k: str) -> str:
        return k.rpartition(".")[2]

    same_name = [k for k in known if leaf(k) == name and k != key]
    if same_name:
        return same_name[0]
    for candidates in ([k for k in known if k.rpartition(".")[0] == section], known):
        by_leaf: dict[str, str] = {}
        for k in candidates:
            by_leaf.setdefault(leaf(k), k)
        if match := difflib.get_close_matches(name, list(by_leaf), n=1, cutoff=0.75):
            return by_leaf[match[0]]
    return None


def build(cls: type[T], data: dict[str, Any]) -> T:
    """Validate a parsed mapping against the schema `cls` (see the module docstring)."""
    try:
        return _build(cls, data, "")
    except UnknownKeyError as err:
        hint = closest_key(err.key, list(keys(cls)))
        if hint is None:
            raise
        raise EmbedforgeError(f"{FILE}: unknown key {err.key!r}; did you mean {hint!r}?") from None


def read_yaml(path: Path) -> Any:
    """Parse a YAML file exactly as DVC does (ruamel.yaml's safe loader, YAML 1.2).

    DVC writes `dvc exp run -S` values with the same library and reads params.yaml with this loader,
    so a value reads back as the user typed it: `off` and `yes` stay text, `2e-05` is a number, an
    empty value is null, and a duplicated key is an error rather than silently the last one.
    """
    try:
        return YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise EmbedforgeError(f"{path}: not valid UTF-8") from None
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(err, "problem", None) or "").strip().splitlines()
        raise EmbedforgeError(
            f"{path}{where}: not valid YAML{f' ({problem[0]})' if problem else ''}"
        ) from None
