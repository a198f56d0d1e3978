"""Every file name and key of `metrics/` and `plots/` the `evaluate` stage writes, and a typed reader for
its metrics JSON documents. Every other module takes these names from here.

The stage first writes the data files (the metrics JSON below and the plot tables), then renders the
Markdown and the images from those files alone, so a rendering can be repeated from the files of any run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import read_json, staged
from embedforge.core.recommended import RECOMMENDED_KEY, SIMILARITY_FILE  # noqa: F401 (the loader's names)

# metrics/: the JSON documents (written from the results) and the Markdown rendered from them
# SIMILARITY_FILE (core.recommended): <matrix>.<benchmark>.{spearman,pearson,coverage} or {accuracy,coverage}
ROWS_KEY = "rows"  # <matrix>.rows = {"total", "genuine"}: the matrix's rows and those its strategy made
# ... and, after the matrices, two keys that are not matrix names (see evaluate.selection):
# RECOMMENDED_KEY (core.recommended): the recommended matrix's name
SELECTION_KEY = "selection"  # how it was chosen, its scores with bootstrap intervals, the difference to cls
NOT_MATRICES = frozenset({RECOMMENDED_KEY, SELECTION_KEY})

CLASSIFICATION_FILE = "classification.json"  # the sections below
FINETUNED_KEY = "finetuned"  # the fine-tuned classifier: its scores, and (lists `dvc metrics` skips):
LABELS = "labels"  # label names in id order
CONFUSION = "confusion"  # rows: true class, columns: predicted class (ids in LABELS order)
PROBE_KEY = "probe"  # probe.<matrix>.<variant>.{accuracy,macro_f1}
VARIANTS = ("frozen", "trainable")  # the probe's and the curves' variants: word vectors frozen or trained
CURVES = "curves"  # the learning curves: train_rows, matrices, ceiling, capped
TRAIN_ROWS = "train_rows"  # size key -> training rows
MATRICES = "matrices"  # matrix or baseline name -> series -> size key -> summary
CEILING = "ceiling"  # the transformer ceiling: size key -> summary (+ `steps`); `full` = the finetune stage's
CAPPED = "capped"  # size key -> {class name: training rows} for classes with fewer rows than the size
CAPS = "caps"  # present only when a cap applied: max_<split>_rows, <split>_rows, <split>_rows_total
SPLITS = ("train", "test")  # the splits the probes and curves use, as in the `caps` keys

CEILING_FILE = "ceiling.json"  # written by the `ceiling` stage, read by this one
STUDENT_FILE = "student.json"  # written by the `student` stage (embedforge.student.run), read by this one
HEADLINE_FILE = "headline.json"  # the few numbers compared across experiments (the DVC metrics)
BY_MATRIX_FILE = "by_matrix.json"  # per matrix: its probe and curve macro-F1s (`dvc metrics diff --targets`)
OOV_FILE = "oov.json"  # <matrix>.<benchmark>: benchmark words missing from the matrix
NEIGHBOURS_FILE = "neighbours.json"  # {"words": [probe words], "matrices": {<matrix>: {<word>: [[w, cos]]}}}
REPORT_FILE = "report.md"
NEIGHBOURS_MARKDOWN = "neighbours.md"

# plots/: the plot tables (written from the results or rendered from the metrics) and the images
SCATTER_DIR = "scatter"  # <benchmark>.csv: matrix, word1, word2, human, cosine
CONFUSION_CSV = "confusion.csv"  # actual, predicted
# matrix, strategy, source, layer (an int, a list such as 3-4, or empty), benchmark, spearman, series
SPEARMAN_CSV = "spearman.csv"
CURVES_CSV = (
    "curves.csv"  # matrix, series, size, train_rows, macro_f1, macro_f1_sd, low, high, accuracy, runs
)
CEILING_ROW = "transformer (fine-tuned)"  # the ceiling's `matrix` in curves.csv (and its report row)
PNG_DIR = "png"  # the images, under plots/
CURVES_PNG = "curves.png"
SPEARMAN_PNG = "spearman.png"  # every matrix's Spearman, one panel per similarity set
LAYERS_PNG = "spearman_by_layer.png"  # only when a strategy / source has matrices at two or more layers
CONFUSION_PNG = "confusion.png"
PROBE_PNG = "probe.png"
TRAINING_PNG = "training.png"
STUDENT_PNG = "student.png"  # the student and the transformer: texts/s (log) against test macro-F1


def scatter_image(benchmark: str) -> str:
    """The scatter image of one similarity set, under plots/png/."""
    return f"scatter_{benchmark}.png"


def _path(keys: Sequence[str]) -> str:
    return ".".join(keys)


@dataclass
class MetricsDoc:
    """One metrics JSON object read back. An absent key reads as None and is listed in `missing`
    (a file of an older run may lack it); a value of the wrong type is an error naming file and key."""

    file: str
    data: dict[str, Any]
    missing: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, data: object, file: str) -> MetricsDoc:
        """Wrap a parsed document; it must be a JSON object."""
        if not isinstance(data, dict):
            raise EmbedforgeError(f"{file}: expected a JSON object of metrics, got {type(data).__name__}")
        return cls(file, data)

    @classmethod
    def read(cls, path: str | Path) -> MetricsDoc:
        return cls.of(read_json(path), str(path))

    def has(self, *keys: str) -> bool:
        """Whether the key path exists (its value may be null)."""
        value: Any = self.data
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return False
            value = value[key]
        return True

    def _get(self, keys: Sequence[str]) -> Any:
        """The value at a key path, or None (listed as missing) when absent."""
        value: Any = self.data
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                self.missing.append(f"{self.file}: {_path(keys)}")
                return None
            value = value[key]
        return value

    def error(self, keys: Sequence[str], expected: str) -> EmbedforgeError:
        """An error naming the file, the key and its value (null when absent), and what was expected."""
        value: Any = self.data
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return self._wrong(keys, value, expected)

    def _wrong(self, keys: Sequence[str], value: Any, expected: str) -> EmbedforgeError:
        return EmbedforgeError(f"{self.file}: {_path(keys)} = {value!r}; expected {expected}")

    def number(self, *keys: str) -> float | None:
        """A number; None when the value is null (undefined) or absent."""
        value = self._get(keys)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._wrong(keys, value, "a number or null")
        return float(value)

    def mapping(self, *keys: str) -> dict[str, Any]:
        """A JSON object; empty when absent."""
        value = self._get(keys) if keys else self.data
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._wrong(keys, value, "a JSON object")
        return value

    def text(self, *keys: str) -> str | None:
        """A string, or None when absent."""
        value = self._get(keys)
        if value is not None and not isinstance(value, str):
            raise self._wrong(keys, value, "a string")
        return value

    def strings(self, *keys: str) -> list[str] | None:
        """A list of strings, or None when absent."""
        value = self._get(keys)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise self._wrong(keys, value, "a list of strings")
        return value

    def counts(self, *keys: str) -> list[list[int]] | None:
        """A table of non-negative integers (list of rows), or None when absent."""
        value = self._get(keys)
        if value is None:
            return None
        ok = isinstance(value, list) and all(
            isinstance(row, list)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in row)
            for row in value
        )
        if not ok:
            raise self._wrong(keys, value, "a list of rows of counts")
        return value


def matrix_keys(similarity: MetricsDoc | dict[str, Any]) -> list[str]:
    """The top-level keys of similarity.json that are matrix names."""
    data = similarity.data if isinstance(similarity, MetricsDoc) else similarity
    return [k for k in data if k not in NOT_MATRICES]


def read_docs(metrics_dir: str | Path, *files: str) -> list[MetricsDoc]:
    """Read some metrics documents of a metrics folder."""
    return [MetricsDoc.read(Path(metrics_dir) / f) for f in files]


def read_optional(metrics_dir: str | Path, file: str) -> MetricsDoc | None:
    """A metrics document another stage writes (the student's), or None when the run has none."""
    path = Path(metrics_dir) / file
    return MetricsDoc.read(path) if staged(path).is_file() else None
