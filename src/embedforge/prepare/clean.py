"""Read raw labelled text tables, clean them, de-duplicate, and split them."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from embedforge.core.errors import EmbedforgeError
from embedforge.core.text import is_missing, normalize_text

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Label cells that mean "no label" (compared case-insensitively): what spreadsheets, pandas and
# JSON writers put in an empty cell.
MISSING_LABELS = frozenset({"", "nan", "na", "n/a", "<na>", "null", "none"})
_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# Compressed inputs are recognised by their first bytes, whatever the suffix or prepare.format says.
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"


def detect_format(path: Path | PurePosixPath, fmt: str = "auto", shown: str | None = None) -> str:
    """The table format of `path`: `fmt` itself, or guessed from the file suffix when `fmt` is auto."""
    if fmt != "auto":
        return fmt
    guessed = _FORMATS.get(path.suffix.lower())
    if guessed is None:
        raise EmbedforgeError(
            f"{shown or path}: cannot tell the format from the suffix; expected one of "
            f"{', '.join(sorted(_FORMATS))} (optionally in a .zip or .gz) or set prepare.format"
        )
    return guessed


# Bounds on what `prepare` reads, each checked while the input streams in, so a hostile or wrong file
# fails in seconds with one line instead of exhausting memory or a parser.
# prepare holds a whole table in memory several times over (bytes, text, DataFrame, tokens): sample or
# split a larger corpus before preparing it.
MAX_INPUT_BYTES = 2 << 30
# Text compresses 3-10x and a table of repeated rows a few tens of times; a compressed input inflating
# past this ratio (once past INFLATION_FLOOR bytes, so a small repetitive file is fine) is a bomb.
MAX_INFLATION = 100
INFLATION_FLOOR = 64 << 20
# prepare keeps at most max_length tokens (a few KB) of a text: a line over a mebibyte is a file without
# line breaks (the wrong format, a JSON array, binary data), and every parser slows to a crawl on it.
MAX_LINE_BYTES = 1 << 20
# The widest header or row: 16,384 is the most columns a spreadsheet (Excel) can save; pandas takes
# minutes over a line of a million fields.
MAX_COLUMNS = 16_384
_READ_CHUNK = 1 << 20
_PARQUET_MAGIC = b"PAR1"


def _size(n: int) -> str:
    """A byte count for messages: `2,048 MiB`, or `1,000 bytes` under a mebibyte."""
    return f"{n >> 20:,} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def _read_bounded(stream: BinaryIO, shown: str, compressed: int | None = None) -> bytes:
    """All bytes of `stream`, counted while read: a one-line error past MAX_INPUT_BYTES, past
    MAX_INFLATION times `compressed` (the size on disk of a compressed input), or at a line longer
    than MAX_LINE_BYTES (not checked for Parquet, which is binary)."""
    chunks: list[bytes] = []
    total = line = newlines = 0
    lines = True
    while chunk := stream.read(_READ_CHUNK):
        if not chunks:
            lines = not chunk.startswith(_PARQUET_MAGIC)
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_INPUT_BYTES:
            raise EmbedforgeError(
                f"{shown}: larger than {_size(MAX_INPUT_BYTES)} uncompressed; expected at most that "
                "(prepare holds the whole table in memory): sample or split the file first"
            )
        if compressed is not None and total > max(INFLATION_FLOOR, MAX_INFLATION * compressed):
            raise EmbedforgeError(
                f"{shown}: inflates to over {MAX_INFLATION} times its compressed size ({_size(total)} read "
                f"from {compressed:,} bytes); expected a compressed table, not a compression bomb"
            )
        if lines:
            pieces = chunk.split(b"\n")
            lengths = [line + len(pieces[0]), *map(len, pieces[1:])]
            longest = max(lengths)
            if longest > MAX_LINE_BYTES:
                at = newlines + lengths.index(longest) + 1
                raise EmbedforgeError(
                    f"{shown} line {at}: longer than {_size(MAX_LINE_BYTES)}; expected one row per line "
                    "(is this a table, and is the format right?)"
                )
            line, newlines = lengths[-1], newlines + len(pieces) - 1
    return b"".join(chunks)


def _unzip(path: Path) -> tuple[bytes, PurePosixPath]:
    """The one table file a zip archive holds, and its name; a one-line error otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                m
                for m in archive.infolist()
                if not m.is_dir()
                and not m.filename.startswith("__MACOSX/")
                and not PurePosixPath(m.filename).name.startswith(".")
            ]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members[:5]) or "none"
                raise EmbedforgeError(
                    f"{path}: a zip input must hold exactly one table file; it holds {len(members)} ({names})"
                )
            inner = PurePosixPath(members[0].filename)
            with archive.open(members[0]) as stream:
                data = _read_bounded(stream, f"{path} ({inner})", max(members[0].compress_size, 1))  # type: ignore[arg-type]
            return data, inner
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as err:
        raise EmbedforgeError(f"{path}: cannot read the zip archive ({str(err).splitlines()[0]})") from None


def read_input(path: Path) -> tuple[bytes, PurePosixPath, str]:
    """(uncompressed bytes, name of the table inside, name for messages) of a plain, .gz or .zip file.

    The input is streamed and checked against MAX_INPUT_BYTES, MAX_INFLATION and MAX_LINE_BYTES as it
    is read, so an oversized or hostile file stops before it is all in memory.
    """
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic.startswith(_ZIP_MAGIC):
        data, inner = _unzip(path)
        return data, inner, f"{path} ({inner})"
    if magic.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as stream:
                data = _read_bounded(stream, str(path), max(path.stat().st_size, 1))  # type: ignore[arg-type]
        except (gzip.BadGzipFile, zlib.error, EOFError) as err:
            raise EmbedforgeError(f"{path}: cannot read the gzip file ({err})") from None
        inner = PurePosixPath(path.name)
        return data, inner.with_suffix("") if inner.suffix.lower() == ".gz" else inner, str(path)
    with path.open("rb") as fh:
        return _read_bounded(fh, str(path)), PurePosixPath(path.name), str(path)


def _check_width(data: bytes, kind: str, shown: str) -> None:
    """A one-line error when a header or row has more than MAX_COLUMNS fields.

    CSV and TSV: the header (pandas itself refuses a row wider than its header); JSON lines: every
    object, its separators counted first and the line parsed only when the count is over the bound;
    Parquet: the schema in the footer.
    """
    if kind in ("csv", "tsv"):
        _check_header(data, kind, shown)
    elif kind == "jsonl" and data.count(b":") > MAX_COLUMNS:
        _check_objects(data, shown)
    elif kind == "parquet":
        try:
            width = pq.read_metadata(pa.BufferReader(data)).num_columns
        except (pa.ArrowException, OSError):
            return  # not Parquet: the read names the error
        if width > MAX_COLUMNS:
            raise EmbedforgeError(
                f"{shown}: the table has {width:,} columns; expected at most {MAX_COLUMNS:,}"
            )


def _check_header(data: bytes, kind: str, shown: str) -> None:
    end = data.find(b"\n")
    header = data if end < 0 else data[:end]
    sep = b"\t" if kind == "tsv" else b","
    if header.count(sep) < MAX_COLUMNS:
        return
    width = len(header.split(sep))
    if kind == "csv":  # a quoted name may hold commas
        width = len(next(csv.reader([header.decode("utf-8", errors="replace")]), []))
    if width > MAX_COLUMNS:
        raise EmbedforgeError(
            f"{shown} line 1: the header has {width:,} columns; expected at most {MAX_COLUMNS:,} "
            "(is the format right?)"
        )


def _check_objects(data: bytes, shown: str) -> None:
    start, n = 0, 1
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if data.count(b":", start, end) > MAX_COLUMNS:
            try:
                row = json.loads(data[start:end])
            except ValueError:
                row = None  # pandas names the parse error
            if isinstance(row, dict) and len(row) > MAX_COLUMNS:
                raise EmbedforgeError(
                    f"{shown} line {n}: the object has {len(row):,} keys; expected at most "
                    f"{MAX_COLUMNS:,} columns"
                )
        start, n = end + 1, n + 1


def _decode_utf8(data: bytes, shown: str) -> str:
    """The text of `data`; a one-line error naming the first line that is not valid UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise EmbedforgeError(
            f"{shown} line {line}: not valid UTF-8 (byte 0x{data[err.start]:02x}); convert the file to UTF-8"
        ) from None


def read_table(path: str | Path, text_column: str, label_column: str, fmt: str = "auto") -> pd.DataFrame:
    """Read a labelled table (plain, gzipped or alone in a .zip) into columns `text` and `label` (raw)."""
    path = Path(path)
    if not path.is_file():
        raise EmbedforgeError(f"{path}: input file not found")
    data, inner, shown = read_input(path)
    kind = detect_format(inner, fmt, shown)
    _check_width(data, kind, shown)
    try:
        if kind == "parquet":
            df = pq.read_table(pa.BufferReader(data)).to_pandas()
        else:
            text = _decode_utf8(data, shown)
            if kind == "jsonl":
                df = pd.read_json(io.StringIO(text), lines=True, dtype=False)
            else:
                df = pd.read_csv(
                    io.StringIO(text),
                    sep="\t" if kind == "tsv" else ",",
                    dtype=str,
                    keep_default_na=False,
                    quoting=3 if kind == "tsv" else 0,
                )
    except (pd.errors.ParserError, ValueError, pa.ArrowException) as err:
        raise EmbedforgeError(f"{shown}: cannot parse as {kind}: {str(err).splitlines()[0]}") from None
    for key, column in (("text_column", text_column), ("label_column", label_column)):
        if column not in df.columns:
            raise EmbedforgeError(f"{shown}: no column {column!r} (prepare.{key}); {_columns(df.columns)}")
    return pd.DataFrame({"text": df[text_column], "label": df[label_column]})


_COLUMN_NAME = re.compile(r"^\w[\w .\-]{0,63}$")
_SHOWN_COLUMNS = 50


def _columns(names: pd.Index) -> str:
    """The columns a table has, for a message: their names when they look like column names, else only
    how many (the first row of a file that is not a table, /etc/passwd say, must not be echoed)."""
    names = [str(n) for n in names]  # type: ignore[assignment]
    if names and len(names) <= _SHOWN_COLUMNS and all(_COLUMN_NAME.match(n) for n in names):
        return f"columns are {', '.join(names)}"
    return (
        f"its first row, read as a header of {len(names):,} column{'' if len(names) == 1 else 's'}, does "
        "not look like column names; expected a header row naming the columns"
    )


def sample_rows(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of `n` rows in their original order (all rows when n is 0 or at least len(df))."""
    if n <= 0 or n >= len(df):
        return df
    keep = np.sort(np.random.default_rng(seed).choice(len(df), size=n, replace=False))
    return df.iloc[keep].reset_index(drop=True)


def label_key(label: object) -> str:
    """A label as text: "" when missing; one spelling per number (1, 1.0, "1.0", "01" -> "1").

    Names (`pos`, `neg`) stay as written; `NaN`, `NA`, `null`, `None` and empty cells are missing.
    """
    text = normalize_text(label)
    if text.lower() in MISSING_LABELS:
        return ""
    if _INTEGER.match(text):
        return str(int(text))
    if _NUMBER.match(text):
        number = float(text)
        if number.is_integer():
            return str(int(number))
        if np.isfinite(number):
            return repr(number)
    return text


@dataclass
class CleanReport:
    """What cleaning changed or removed, step by step (written to metrics/prepare.json)."""

    rows_read: int = 0
    changed_by_nfkc: int = 0
    bom_removed: int = 0
    whitespace_stripped: int = 0
    labels_normalized: int = 0  # a number written another way (1.0, "01") -> one class
    dropped_empty_text: int = 0
    dropped_missing_label: int = 0
    dropped_conflicting_label: int = 0
    dropped_duplicate: int = 0
    dropped_cross_split: int = 0
    rows_kept: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def clean(df: pd.DataFrame, report: CleanReport, split_column: str | None = None) -> pd.DataFrame:
    """Normalize texts and labels; drop empties, missing labels, conflicting labels and exact duplicates.

    Other columns are kept; of duplicate texts the first row is kept. With `split_column`, a duplicate
    whose first copy is in another split is counted as `dropped_cross_split`.
    """
    report.rows_read += len(df)
    raw = df["text"].map(lambda t: "" if is_missing(t) else str(t))
    nfkc = raw.map(lambda t: unicodedata.normalize("NFKC", t))
    report.changed_by_nfkc += int((nfkc != raw).sum())
    report.bom_removed += int(nfkc.str.contains("\ufeff", regex=False).sum())
    text = raw.map(normalize_text)
    report.whitespace_stripped += int((text != nfkc.str.replace("\ufeff", "", regex=False)).sum())
    labels = df["label"].map(label_key)
    report.labels_normalized += int(((labels != df["label"].map(normalize_text)) & (labels != "")).sum())
    out = df.assign(text=text, label=labels)
    empty = out["text"] == ""
    report.dropped_empty_text += int(empty.sum())
    out = out[~empty]
    missing = out["label"] == ""
    report.dropped_missing_label += int(missing.sum())
    out = out[~missing]
    n_labels = out.groupby("text")["label"].nunique()
    conflicting = out["text"].isin(n_labels.index[n_labels > 1])
    report.dropped_conflicting_label += int(conflicting.sum())
    out = out[~conflicting]
    duplicated = out.duplicated("text", keep="first")
    crossed = pd.Series(False, index=out.index)
    if split_column is not None:
        crossed = duplicated & (out[split_column] != out.groupby("text")[split_column].transform("first"))
    report.dropped_cross_split += int(crossed.sum())
    report.dropped_duplicate += int((duplicated & ~crossed).sum())
    out = out[~duplicated].reset_index(drop=True)
    report.rows_kept = len(out)
    return out


def label_names(labels: pd.Series) -> list[str]:
    """Sorted distinct labels (numerically when every label is a number)."""
    names = sorted(set(labels))
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def stratified_split(df: pd.DataFrame, ratios: dict[str, float], seed: int) -> dict[str, pd.DataFrame]:
    """Seeded split with each class spread over the splits in proportion to `ratios`."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in ratios}
    for _, group in df.groupby("label", sort=True):
        group = group.iloc[rng.permutation(len(group))]
        exact = np.array([ratios[name] * len(group) for name in ratios])
        counts = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - counts), kind="stable")[: len(group) - counts.sum()]:
            counts[i] += 1
        start = 0
        for name, n in zip(ratios, counts, strict=True):
            parts[name].append(group.iloc[start : start + n])
            start += n
    return {name: pd.concat(chunks).sort_index().reset_index(drop=True) for name, chunks in parts.items()}


def check_split(frame: pd.DataFrame, name: str, source: str, fix: str) -> None:
    """A split must be non-empty; `fix` tells the user what to change."""
    if frame.empty:
        raise EmbedforgeError(f"{source}: the {name} split is empty; {fix}")


def check_classes(df: pd.DataFrame, source: str) -> None:
    """A dataset must be non-empty after cleaning and have at least two classes."""
    if df.empty:
        raise EmbedforgeError(
            f"{source}: no rows left after cleaning "
            "(empty texts, missing labels, duplicates and conflicting labels removed)"
        )
    labels = sorted(set(df["label"]))
    if len(labels) < 2:
        raise EmbedforgeError(
            f"{source}: only one class ({labels[0]!r}) after cleaning; classification needs at least two"
        )
