"""`embeddings/`: the contract between `extract` and its readers, owned here alone.

Layout: one `WordVectors` pair per matrix (`<name>.safetensors` + `<name>.vocab.parquet`, see
`embedforge.core.embedding`), optional exports beside it, and `index.json`:
  {"matrices": [MatrixRecord, ...], "layer_convention": LAYER_CONVENTION, "vocab_size": V}
plus `"lexicon"` (the counts of `core.lexicon.Constraints.summary`) when `extract.lexicon` was applied.

Matrix names are built here (`matrix_name`, `vectors_name`) and never parsed back: a reader that needs a
matrix's strategy, source or layer reads its `MatrixRecord`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import read_json, write_json

INDEX_FILE = "index.json"
DEFAULT_ROOT = Path("embeddings")
LAYER_CONVENTION = "hidden_states index: 0 = embedding output, num_hidden_layers = last layer"
RANDOM_BASELINE = "random"  # the name under which evaluate reports a random matrix of the same shape


class Strategy(StrEnum):
    """The strategy names a matrix record carries (`MatrixRecord.strategy`)."""

    INPUT = "input"  # the encoder's input embedding rows
    CLS = "cls"  # the tutorial's method: a word alone through the encoder, its [CLS] vector
    DECONTEXT = "decontext"
    AGGREGATE = "aggregate"
    VECTORS = "vectors"  # vectors read from a file (`extract.vector_files`)
    WORD2VEC = "word2vec"  # the word2vec baseline trained on the same corpus


class Source(StrEnum):
    """The encoders a matrix is extracted from (`MatrixRecord.source`)."""

    BASE = "base"
    FINETUNED = "finetuned"


Group = tuple[int, ...]  # hidden_states indices averaged into one matrix
Layer = int | list[int] | None  # a group as recorded: one index, the averaged list, or none


def layer_label(group: Group) -> int | list[int]:
    """A group as it appears in index.json: an int for one layer, the list for an average."""
    return group[0] if len(group) == 1 else list(group)


def matrix_name(strategy: str, source: str, group: Group | None = None) -> str:
    """`decontext`, `base`, (4,) -> `decontext_base_L4`; (2, 3) -> `..._L2_3`; no group -> `cls_base`."""
    suffix = "" if group is None else "_L" + "_".join(str(i) for i in group)
    return f"{strategy}_{source}{suffix}"


# the tutorial's method on the fine-tuned encoder: the baseline every other matrix is read against
TUTORIAL_MATRIX = matrix_name(Strategy.CLS, Source.FINETUNED)


def vectors_name(path: str | Path) -> str:
    """`data/sgns.zhihu.word.txt` -> `vectors_sgns_zhihu_word`."""
    stem = re.sub(r"\.(txt|bin|vec|w2v)$", "", Path(path).name)
    return "vectors_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)


def random_name(first: str, shapes: int) -> str:
    """The random baseline's name: `random`, or `random_<first matrix>` when vocabularies/shapes differ."""
    return RANDOM_BASELINE if shapes == 1 else f"{RANDOM_BASELINE}_{first}"


def matching(patterns: Sequence[str], names: Sequence[str], key: str) -> list[str]:
    """The names (in their order) that any of the glob `patterns` matches; a pattern that matches no name is
    an error naming the params key `key` it came from."""
    for pattern in patterns:
        if not any(fnmatchcase(n, pattern) for n in names):
            raise EmbedforgeError(
                f"params.yaml: {key}: {pattern!r} matches no matrix of embeddings/index.json; "
                f"expected a matrix name or a glob such as {names[0]!r} or 'decontext_*_L4'"
            )
    return [n for n in names if any(fnmatchcase(n, p) for p in patterns)]


@dataclass(frozen=True)
class MatrixRecord:
    """What index.json says about one matrix."""

    name: str
    strategy: str
    source: str | None
    layer: Layer
    pooling: str | None
    postprocess: str
    words: int
    dim: int

    @classmethod
    def from_dict(cls, data: object, where: str) -> MatrixRecord:
        """Validate one index entry; a missing or mistyped field is an error naming it."""
        if not isinstance(data, dict):
            raise EmbedforgeError(f"{where}: expected an object describing a matrix")
        missing = [k for k in ("name", "strategy") if not isinstance(data.get(k), str) or not data.get(k)]
        if missing:
            raise EmbedforgeError(f"{where}: no {missing[0]!r}; expected a non-empty string")
        return cls(
            name=data["name"],
            strategy=data["strategy"],
            source=data.get("source"),
            layer=data.get("layer"),
            pooling=data.get("pooling"),
            postprocess=data.get("postprocess") or "none",
            words=int(data.get("words") or 0),
            dim=int(data.get("dim") or 0),
        )

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Catalog:
    """An `embeddings/` folder: its matrices and their records."""

    root: Path = DEFAULT_ROOT

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    def path(self, name: str) -> Path:
        """The stem of a matrix's files (what `WordVectors.save`/`load` take)."""
        return self.root / name

    def load(self, name: str) -> WordVectors:
        return WordVectors.load(self.path(name))

    def records(self) -> list[MatrixRecord]:
        """The matrices listed in index.json, in extraction order."""
        data = read_json(self.index_path)
        matrices = data.get("matrices") if isinstance(data, dict) else None
        if not isinstance(matrices, list) or not matrices:
            raise EmbedforgeError(
                f'{self.index_path}: expected {{"matrices": [{{"name": ...}}, ...]}} with at least one matrix'
            )
        records = [
            MatrixRecord.from_dict(m, f"{self.index_path}: matrices[{i}]") for i, m in enumerate(matrices)
        ]
        names = [r.name for r in records]
        if len(set(names)) != len(names):
            raise EmbedforgeError(f"{self.index_path}: matrix names repeat; expected distinct names")
        return records

    def write_index(
        self, records: Sequence[MatrixRecord], vocab_size: int, lexicon: dict[str, Any] | None = None
    ) -> None:
        """Write index.json (last, after every matrix file); `lexicon`: the counts of extract.lexicon's
        constraints, when one was applied."""
        index: dict[str, Any] = {
            "matrices": [r.to_dict() for r in records],
            "layer_convention": LAYER_CONVENTION,
            "vocab_size": vocab_size,
        }
        if lexicon is not None:
            index["lexicon"] = lexicon
        write_json(self.index_path, index)
