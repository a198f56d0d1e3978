"""The `prepare` step: raw table(s) -> cleaned, split, tokenized Parquet + label map + word vocabulary."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from transformers import PreTrainedTokenizerBase

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import PrepareParams, check_prepare
from embedforge.core.prepared import SPLITS, PreparedData
from embedforge.core.text import DEFAULT_CACHE_DIR, build_vocab, segment
from embedforge.prepare.clean import (
    CleanReport,
    check_classes,
    check_split,
    clean,
    label_names,
    read_table,
    sample_rows,
    stratified_split,
)

log = logging.getLogger(__name__)
# Past this share of [UNK] among a split's text tokens, prepare warns: the tokenizer does not fit the
# data (another language or script, a tokenizer that lost its vocabulary), and every result built on the
# tokens would be near noise. A fitting tokenizer leaves well under 1 % unknown.
UNK_WARN_SHARE = 0.5


def _fixed_split(p: PrepareParams, report: CleanReport) -> dict[str, pd.DataFrame]:
    """Read the user's own train/validation/test files; a text already in an earlier split is dropped."""
    frames = [
        read_table(str(path), p.text_column, p.label_column, p.format).assign(split=name)
        for name, path in p.split_files.items()
    ]
    combined = pd.concat(frames, ignore_index=True)
    # Rows are in train, validation, test order and clean() keeps the first copy of a text, so a text
    # found in several splits stays only in the earliest one.
    cleaned = sample_rows(clean(combined, report, split_column="split"), p.sample_rows, p.seed)
    return {
        name: cleaned[cleaned["split"] == name].drop(columns="split").reset_index(drop=True)
        for name in SPLITS
    }


def _tokenize(texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> tuple[list, int]:
    """Token ids truncated to max_length, and how many texts needed truncation."""
    full = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    ids = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    return ids, truncated


def _length_stats(lengths: np.ndarray) -> dict[str, float]:
    """Token-length distribution (percentiles) for metrics."""
    q = np.percentile(lengths, [50, 90, 95, 99])
    return {
        "mean": round(float(lengths.mean()), 2),
        **{f"p{k}": round(float(v), 1) for k, v in zip((50, 90, 95, 99), q, strict=True)},
        "max": int(lengths.max()),
    }


def unknown_share(ids: list[list[int]], tokenizer: PreTrainedTokenizerBase) -> float:
    """The share of [UNK] among the text tokens (special tokens not counted) of tokenized texts."""
    unk = tokenizer.unk_token_id
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64)
    text = flat[~np.isin(flat, [i for i in tokenizer.all_special_ids if i != unk])]
    return float((text == unk).mean()) if len(text) else 0.0


def warn_missing_classes(splits: dict[str, pd.DataFrame]) -> None:
    """Warn for each class absent from a split: its per-class score there is 0 or undefined, and
    macro-F1 averages it in (absent from train: the classifier never sees it)."""
    present = {name: set(frame["label"]) for name, frame in splits.items()}
    every = set().union(*present.values())
    for name in SPLITS:
        for label in sorted(every - present[name], key=str):
            log.warning(
                "prepare: class %r has no row in the %s split (%s); its scores there are 0 or undefined",
                label,
                name,
                ", ".join(f"{n}: {int((splits[n]['label'] == label).sum())}" for n in SPLITS if n != name),
            )


def check_max_length(p: PrepareParams, limit: int | None) -> None:
    """`max_length` must fit the model's position table (else fine-tuning fails on the long texts)."""
    if limit is not None and p.max_length > limit:
        raise EmbedforgeError(
            f"params.yaml: prepare.max_length = {p.max_length} is longer than the model accepts; "
            f"expected <= {limit} (the base model's position limit)"
        )


def prepare(
    p: PrepareParams,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    max_positions: int | None = None,
) -> dict:
    """Run the whole step; write everything into `out_dir` atomically and return the metrics.

    `max_positions` is the model's longest input (embedforge.core.models.max_positions); None skips
    that check.
    """
    check_prepare(p)
    check_max_length(p, max_positions)
    report = CleanReport()
    if any(p.split_files.values()):
        splits = _fixed_split(p, report)
        source = str(p.train_file)
        check_classes(splits["train"], source)
        for name, path in p.split_files.items():
            fix = f"no rows of prepare.{name}_file are left after cleaning (empty, unlabelled or repeated)"
            fix += " or sampling (raise prepare.sample_rows)" if p.sample_rows else ""
            check_split(splits[name], name, str(path), fix)
    else:
        assert p.input is not None  # check_prepare
        df = clean(read_table(p.input, p.text_column, p.label_column, p.format), report)
        df = sample_rows(df, p.sample_rows, p.seed)
        source = p.input
        check_classes(df, source)
        ratios = {"train": p.train_ratio, "validation": p.validation_ratio, "test": p.test_ratio}
        splits = stratified_split(df, ratios, p.seed)
        for name in SPLITS:
            more = "raise prepare.sample_rows" if p.sample_rows else "provide more data"
            check_split(splits[name], name, source, f"raise prepare.{name}_ratio or {more}")
    warn_missing_classes(splits)
    names = label_names(pd.concat([s["label"] for s in splits.values()]))
    label_id = {name: i for i, name in enumerate(names)}

    used = sum(len(s) for s in splits.values())
    metrics: dict = {
        "cleaning": report.as_dict(),
        # sample_rows: 0 = every cleaned row; else a seeded sample of that many, taken before splitting
        "sample": {"sample_rows": p.sample_rows, "rows_cleaned": report.rows_kept, "rows_used": used},
        "rows": {},
        "labels": {},
        "token_length": {},
        "truncated": {},
    }
    tables = {}
    vocab = None
    for name, frame in splits.items():
        texts = frame["text"].tolist()
        ids, truncated = _tokenize(texts, tokenizer, p.max_length)
        share = unknown_share(ids, tokenizer)
        if share > UNK_WARN_SHARE:
            log.warning(
                "prepare: %.0f%% of the %s split's tokens are the unknown token %s; expected a tokenizer "
                "that fits the data (check model.source and prepare.language)",
                100 * share,
                name,
                tokenizer.unk_token,
            )
        words = segment(texts, p.language, cache_dir, desc=f"segment {name}")
        lengths = np.array([len(x) for x in ids], dtype=np.int32)
        tables[name] = pa.table(
            {
                "text": pa.array(texts, pa.string()),
                "label": pa.array(frame["label"].map(label_id).to_numpy(), pa.int64()),
                "input_ids": pa.array(ids, pa.list_(pa.int32())),
                "length": pa.array(lengths, pa.int32()),
                "words": pa.array(words, pa.list_(pa.string())),
            }
        )
        metrics["rows"][name] = len(frame)
        metrics["labels"][name] = {n: int(c) for n, c in frame["label"].value_counts().sort_index().items()}
        metrics["token_length"][name] = _length_stats(lengths)
        metrics["truncated"][name] = truncated
        if name == "train":
            vocab = build_vocab(words, p.min_count, p.max_vocab_size)
    assert vocab is not None
    metrics["vocab"] = {
        "size": len(vocab),
        "min_count": p.min_count,
        "train_word_tokens": int(sum(len(w) for w in tables["train"]["words"].to_pylist())),
        "covered_tokens": int(vocab["count"].sum()),
    }

    PreparedData.write(out_dir, tables, vocab, names)
    return metrics
