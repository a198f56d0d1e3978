"""An unlabeled corpus for extraction (`extract.corpus`): text, JSON Lines or Parquet shards, streamed.

`extract.corpus` names a file, a folder (every corpus file under it, sorted by path) or a glob. Formats,
by suffix: `.txt` (one sentence a line), `.jsonl` (one JSON object a line, the text in
`extract.corpus_field`), `.parquet` (the text in column `extract.corpus_field`); `.txt.gz` and `.jsonl.gz`
are read compressed. Texts are normalised and segmented as `prepare` does it (`core.text`: NFKC, whitespace
collapsed), blank ones skipped, one window of sentences at a time: memory holds
one window (plus, in a Parquet file, one record batch), whatever the corpus size. A window is segmented
only when something reads it, so a rank of a sharded run (or a resumed run) skips other windows cheaply.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, overload

import pyarrow.parquet as pq

from embedforge.core.errors import EmbedforgeError
from embedforge.core.prepared import PreparedData
from embedforge.core.text import DEFAULT_CACHE_DIR, normalize_text, segment_text

SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz", ".parquet")


def corpus_format(path: Path) -> str:
    """`text`, `jsonl` or `parquet`, from the file name; anything else is an error naming the file."""
    name = path.name.lower()
    for suffix, fmt in ((".txt", "text"), (".jsonl", "jsonl"), (".parquet", "parquet")):
        if name.endswith(suffix) or (fmt != "parquet" and name.endswith(suffix + ".gz")):
            return fmt
    raise EmbedforgeError(f"{path}: not a corpus file; expected a name ending in {', '.join(SUFFIXES)}")


def corpus_files(spec: str | Path) -> list[Path]:
    """The files `extract.corpus` names: a file, every corpus file under a folder, or a glob's matches."""
    path = Path(spec).expanduser()
    if path.is_file():
        corpus_format(path)
        return [path]
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.name.lower().endswith(SUFFIXES))
        where = f"{spec}: no corpus file in this folder"
    else:
        files = sorted(Path(f) for f in glob.glob(str(path), recursive=True) if Path(f).is_file())
        where = f"{spec}: no file matches"
        for f in files:
            corpus_format(f)
    if not files:
        raise EmbedforgeError(f"{where} (extract.corpus); expected files ending in {', '.join(SUFFIXES)}")
    return files


def _open_text(path: Path) -> IO[str]:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict")


def read_texts(path: Path, field: str = "text") -> Iterator[str]:
    """The raw texts of one corpus file, in file order (blank lines of text files skipped)."""
    fmt = corpus_format(path)
    if fmt == "parquet":
        parquet = pq.ParquetFile(path)
        if field not in parquet.schema_arrow.names:
            raise EmbedforgeError(
                f"{path}: no column {field!r} (extract.corpus_field); columns: {parquet.schema_arrow.names}"
            )
        for batch in parquet.iter_batches(batch_size=8192, columns=[field]):
            yield from (t for t in batch.column(0).to_pylist() if isinstance(t, str))
        return
    with _open_text(path) as fh:
        try:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                yield _json_text(path, n, line, field) if fmt == "jsonl" else line
        except UnicodeDecodeError:
            raise EmbedforgeError(f"{path}: not valid UTF-8 text") from None
        except (OSError, EOFError) as err:  # a truncated or corrupt .gz
            raise EmbedforgeError(f"{path}: cannot be read ({err})") from None


def _json_text(path: Path, n: int, line: str, field: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        raise EmbedforgeError(f"{path} line {n}: not valid JSON") from None
    text = record.get(field) if isinstance(record, dict) else None
    if not isinstance(text, str):
        raise EmbedforgeError(f"{path} line {n}: expected an object with a text field {field!r}")
    return text


class Window(Sequence[list[str]]):
    """A window of texts, segmented the first time a sentence is read (its length needs no segmenting)."""

    def __init__(self, texts: list[str], language: str, cache_dir: Path) -> None:
        self.texts, self.language, self.cache_dir = texts, language, cache_dir

    @cached_property
    def sentences(self) -> list[list[str]]:
        return [segment_text(t, self.language, self.cache_dir) for t in self.texts]

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, i: int) -> list[str]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[list[str]]: ...
    def __getitem__(self, i: int | slice) -> list[str] | Sequence[list[str]]:
        return self.sentences[i]

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self.sentences)


@dataclass(frozen=True)
class CorpusFiles:
    """`extract.corpus` as a re-readable stream of windows of segmented sentences (a `source.Corpus`)."""

    spec: str
    field: str = "text"
    language: str = "zh"
    window: int = 4096
    cache_dir: Path = DEFAULT_CACHE_DIR

    @cached_property
    def files(self) -> list[Path]:
        return corpus_files(self.spec)

    def texts(self) -> Iterator[str]:
        """Every non-blank text, normalised, in file order."""
        for path in self.files:
            for raw in read_texts(path, self.field):
                if text := normalize_text(raw):
                    yield text

    def __iter__(self) -> Iterator[Window]:
        batch: list[str] = []
        for text in self.texts():
            batch.append(text)
            if len(batch) == self.window:
                yield Window(batch, self.language, self.cache_dir)
                batch = []
        if batch:
            yield Window(batch, self.language, self.cache_dir)

    def rows(self) -> int:
        """Sentences in the corpus (one reading pass without segmentation; for the progress bar)."""
        return sum(1 for _ in self.texts())


@dataclass(frozen=True)
class PreparedSentences:
    """A prepared split's segmented sentences as a re-readable stream of windows (the default corpus)."""

    prepared: PreparedData
    split: str = "train"
    window: int = 16384

    def __iter__(self) -> Iterator[list[list[str]]]:
        return self.prepared.sentences(self.split, self.window)
