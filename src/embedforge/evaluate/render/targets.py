"""The project's targets (`evaluate.targets`): scores a run of one model is expected to reach.

An ordinary input file (YAML, e.g. `data/targets.yaml` for the default model on the default benchmarks):

    source: pkg:embedding/m3e-small    # the model.source the targets are for
    recommended:                       # benchmark -> the recommended matrix's score at least
      wordsim240: 0.66                 #   (Spearman on a similarity set, accuracy on an analogy set)
    curves:                            # the learning curves, per size key (texts per class, or `full`)
      consumers: [cnn_frozen]          #   the best of these on a matrix counts for the margins
      over_random: {50: 0.10}          #   best extracted matrix − best random baseline, at least
      over_word2vec: {50: 0.05}        #   best extracted matrix − the word2vec baseline, at least
      finetuned_ahead: [50, full]      #   each fine-tuned encoder's matrix ahead of the base encoder's
    student:                           # the shipped student against the fine-tuned transformer
      within: 0.01                     #   test macro-F1 at most this far below it
      speedup: 50                      #   at least this many times its texts/s
      size_ratio: 10                   #   at most 1/this of its size on disk

The report shows a target only where it applies: a run of that model source (`for_source`), a benchmark
the run scored, a curve size the run drew; each reads "met" or "missed by" how much.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import read_yaml

TOP_KEYS = frozenset({"source", "recommended", "curves", "student"})
STUDENT_KEYS = frozenset({"within", "speedup", "size_ratio"})
CURVE_KEYS = frozenset({"consumers", "over_random", "over_word2vec", "finetuned_ahead"})


@dataclass(frozen=True)
class CurveTargets:
    """The learning-curve targets, by size key (`50`, `full`)."""

    consumers: tuple[str, ...] = ()
    over_random: dict[str, float] = field(default_factory=dict)
    over_word2vec: dict[str, float] = field(default_factory=dict)
    finetuned_ahead: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudentTargets:
    """The student against the transformer: F1 gap at most, speed-up and size ratio at least."""

    within: float | None = None
    speedup: float | None = None
    size_ratio: float | None = None


@dataclass(frozen=True)
class Targets:
    """One model source's targets, read from `file`."""

    file: str
    source: str
    recommended: dict[str, float] = field(default_factory=dict)
    curves: CurveTargets = field(default_factory=CurveTargets)
    student: StudentTargets | None = None


def verdict(value: float, target: float, strict: bool = False) -> str:
    """`met`, or `missed by 0.012` (`strict`: the value must be above the target, not equal to it)."""
    met = value > target if strict else value >= target
    return "met" if met else f"missed by {target - value:.3f}"


class _Reader:
    """Checks one targets document; every error names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, value: object, expected: str) -> EmbedforgeError:
        return EmbedforgeError(f"{self.path}: {key or '(top level)'} = {value!r}; expected {expected}")

    def mapping(self, value: object, key: str, allowed: frozenset[str] | None = None) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, value, "a mapping")
        for k in value:
            if allowed is not None and k not in allowed:
                raise EmbedforgeError(
                    f"{self.path}: unknown key {f'{key}.' if key else ''}{k}; expected one of "
                    + ", ".join(sorted(allowed))
                )
        return value

    def number(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, value, "a number")
        return float(value)

    def size(self, value: object, key: str) -> str:
        """A size key as the metrics write it: a positive integer (texts per class) or `full`."""
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return str(value)
        if value == "full" or (isinstance(value, str) and value.isdigit() and int(value) > 0):
            return str(value)
        raise self.error(key, value, "a number of texts per class or 'full'")

    def margins(self, value: object, key: str) -> dict[str, float]:
        items = self.mapping(value, key).items()
        return {self.size(k, f"{key}.{k}"): self.number(v, f"{key}.{k}") for k, v in items}

    def names(self, value: object, key: str) -> list[object]:
        if not isinstance(value, list):
            raise self.error(key, value, "a list")
        return value

    def curves(self, value: object) -> CurveTargets:
        doc = self.mapping(value, "curves", CURVE_KEYS)
        consumers = self.names(doc.get("consumers", []), "curves.consumers")
        for i, name in enumerate(consumers):
            if not isinstance(name, str):
                raise self.error(f"curves.consumers[{i}]", name, "a consumer series such as cnn_frozen")
        ahead = self.names(doc.get("finetuned_ahead", []), "curves.finetuned_ahead")
        return CurveTargets(
            consumers=tuple(str(c) for c in consumers),
            over_random=self.margins(doc.get("over_random", {}), "curves.over_random"),
            over_word2vec=self.margins(doc.get("over_word2vec", {}), "curves.over_word2vec"),
            finetuned_ahead=tuple(self.size(s, f"curves.finetuned_ahead[{i}]") for i, s in enumerate(ahead)),
        )

    def student(self, value: object) -> StudentTargets | None:
        if value is None:
            return None
        doc = self.mapping(value, "student", STUDENT_KEYS)
        return StudentTargets(**{k: self.number(v, f"student.{k}") for k, v in doc.items()})

    def targets(self, data: object) -> Targets:
        doc = self.mapping(data, "", TOP_KEYS)
        source = doc.get("source")
        if not isinstance(source, str) or not source:
            raise self.error("source", source, "the model.source the targets are for")
        recommended = self.mapping(doc.get("recommended", {}), "recommended")
        return Targets(
            file=str(self.path),
            source=source,
            recommended={k: self.number(v, f"recommended.{k}") for k, v in recommended.items()},
            curves=self.curves(doc.get("curves", {})),
            student=self.student(doc.get("student")),
        )


def read_targets(path: str | Path) -> Targets:
    """Read and check a targets file; a bad file is a one-line error naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise EmbedforgeError(f"{path}: targets file not found (evaluate.targets)")
    return _Reader(path).targets(read_yaml(path))


def for_source(path: str | Path | None, model_source: str) -> Targets | None:
    """The targets of `path` when they are for `model_source`; None when there is no file or they are
    for another model (the file is read and checked either way, so a bad file fails fast)."""
    if path is None:
        return None
    targets = read_targets(path)
    return targets if targets.source == model_source else None
