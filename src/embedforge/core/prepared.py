"""`data/prepared/`: the contract between `prepare` and every later stage, owned here alone.

Layout (written only by `PreparedData.write`, read only through `PreparedData`):
  `<split>.parquet` for split in SPLITS, columns COLUMNS: `text` (str), `label` (int64 id),
                    `input_ids` (list<int32>, with special tokens), `length` (int32), `words` (list<str>)
  `vocab.parquet`   `word` (str), `count` (int64), frequency order
  `labels.json`     `{"names": [...]}`: names[i] is the original label of id i
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, parquet_rows, read_json, read_parquet, write_json

SPLITS = ("train", "validation", "test")
COLUMNS = ("text", "label", "input_ids", "length", "words")
VOCAB_FILE = "vocab.parquet"
LABELS_FILE = "labels.json"
DEFAULT_ROOT = Path("data/prepared")


def _check_split(name: str) -> None:
    if name not in SPLITS:
        raise EmbedforgeError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")


@dataclass(frozen=True)
class PreparedData:
    """A `data/prepared/` folder: the splits, the word vocabulary and the label map."""

    root: Path = DEFAULT_ROOT

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def split_path(self, name: str) -> Path:
        """The Parquet file of one split."""
        _check_split(name)
        return self.root / f"{name}.parquet"

    @property
    def vocab_path(self) -> Path:
        return self.root / VOCAB_FILE

    @property
    def labels_path(self) -> Path:
        return self.root / LABELS_FILE

    def split(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One split as a DataFrame (only `columns` when given)."""
        return read_parquet(self.split_path(name), columns=list(columns) if columns else None)

    def rows(self, name: str) -> int:
        """Rows of one split, from the Parquet footer only."""
        return parquet_rows(self.split_path(name))

    def label_names(self) -> list[str]:
        """names[i] is the original label of id i."""
        data = read_json(self.labels_path)
        names = data.get("names") if isinstance(data, dict) else None
        if not isinstance(names, list) or len(names) < 2:
            raise EmbedforgeError(
                f'{self.labels_path}: expected {{"names": [...]}} with at least 2 label names'
            )
        return [str(n) for n in names]

    def vocab(self) -> pd.DataFrame:
        """The training-split word vocabulary: `word`, `count`, frequency order."""
        return read_parquet(self.vocab_path, columns=["word", "count"])

    def sentences(self, split: str = "train", window: int = 16384) -> Iterator[list[list[str]]]:
        """Stream the segmented sentences (`words`) of a split, `window` sentences at a time."""
        path = self.split_path(split)
        if not path.is_file():
            raise EmbedforgeError(f"{path}: file not found (run the prepare stage first)")
        parquet = pq.ParquetFile(path)
        if "words" not in parquet.schema_arrow.names:
            raise EmbedforgeError(f"{path}: expected a 'words' column (segmented sentences)")
        for batch in parquet.iter_batches(batch_size=window, columns=["words"]):
            yield [list(s or []) for s in batch.column(0).to_pylist()]

    def files(self, *splits: str, labels: bool = True) -> list[Path]:
        """The files a consumer of these splits (and the label map) depends on."""
        return [self.split_path(s) for s in splits] + ([self.labels_path] if labels else [])

    @classmethod
    def write(
        cls, root: str | Path, tables: Mapping[str, pa.Table], vocab: pd.DataFrame, names: Sequence[str]
    ) -> PreparedData:
        """Write a whole prepared folder atomically (the only writer of this layout)."""
        if set(tables) != set(SPLITS):
            raise ValueError(f"expected tables for {SPLITS}, got {sorted(tables)}")
        for name, table in tables.items():
            if tuple(table.column_names) != COLUMNS:
                raise ValueError(f"split {name}: columns {table.column_names}, expected {COLUMNS}")
        with atomic_path(root, is_dir=True) as tmp:
            for name in SPLITS:
                pq.write_table(tables[name], tmp / f"{name}.parquet")
            pq.write_table(
                pa.Table.from_pandas(vocab[["word", "count"]], preserve_index=False), tmp / VOCAB_FILE
            )
            write_json(tmp / LABELS_FILE, {"names": list(names)})
        return cls(Path(root))
