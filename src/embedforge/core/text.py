"""Text as every stage reads it: normalisation, word segmentation and the frequency-ordered vocabulary.

`prepare` segments the training data with these functions and `extract` segments its corpus with the same
ones, so a word means the same thing in both.

Chinese is segmented with jieba's bundled dictionary (fixed, so segmentation is reproducible); its
prefix-dictionary cache is kept under the project (`.cache/jieba`), never in the system temp folder.
English uses a regular-expression word tokenizer. Tokens are lower-cased.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from embedforge.core.errors import EmbedforgeError

DEFAULT_CACHE_DIR = Path(".cache/jieba")
_EN_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[^\w\s]", re.UNICODE)


def is_missing(value: object) -> bool:
    """None, NaN, pandas' NA or NaT: what readers put in an empty cell."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def normalize_text(text: object) -> str:
    """NFKC, BOMs removed, whitespace runs collapsed to one space and stripped."""
    if is_missing(text):
        return ""
    text = unicodedata.normalize("NFKC", str(text)).replace("\ufeff", "")
    return " ".join(text.split())


@lru_cache(maxsize=4)
def _jieba(cache_dir: str):  # noqa: ANN202 - jieba has no type hints
    import jieba

    jieba.setLogLevel(logging.WARNING)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tokenizer = jieba.Tokenizer()  # the bundled dictionary
    tokenizer.tmp_dir = cache_dir
    tokenizer.initialize()
    return tokenizer


def segment_text(text: str, language: str, cache_dir: Path = DEFAULT_CACHE_DIR) -> list[str]:
    """One text -> its tokens (punctuation kept, whitespace dropped, lower-cased)."""
    if language == "zh":
        tokens = _jieba(str(cache_dir)).lcut(text, HMM=True)
        return [t.lower() for t in tokens if not t.isspace()]
    if language == "en":
        return [t.lower() for t in _EN_WORD.findall(text)]
    raise EmbedforgeError(f"unknown language {language!r}; expected zh or en")


def segment(
    texts: Iterable[str], language: str, cache_dir: Path = DEFAULT_CACHE_DIR, desc: str = "segment"
) -> list[list[str]]:
    """Segment many texts, with a progress bar."""
    texts = list(texts)
    return [segment_text(t, language, cache_dir) for t in tqdm(texts, desc=desc, unit="text", leave=False)]


def is_word(token: str) -> bool:
    """A vocabulary word has at least one letter or digit (punctuation-only tokens are not words)."""
    return any(unicodedata.category(c)[0] in "LN" for c in token)


def build_vocab(sentences: Iterable[list[str]], min_count: int = 1, max_size: int = 0) -> pd.DataFrame:
    """Frequency-ordered `word`/`count` table: count >= min_count, at most max_size words (0 = all)."""
    return vocab_table(count_words(sentences), min_count, max_size)


def count_words(sentences: Iterable[list[str]]) -> Counter[str]:
    """How often each word (`is_word` token) occurs in segmented sentences."""
    return Counter(tok for sent in sentences for tok in sent if is_word(tok))


def vocab_table(counts: Counter[str], min_count: int = 1, max_size: int = 0) -> pd.DataFrame:
    """`build_vocab` from word counts (summed over torchrun ranks, say): ties broken by the word."""
    rows = sorted(((w, c) for w, c in counts.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
    if max_size:
        rows = rows[:max_size]
    vocab = pd.DataFrame(rows, columns=["word", "count"]).astype({"word": str, "count": "int64"})
    if vocab.empty:
        raise EmbedforgeError(
            f"the vocabulary is empty (no word occurs at least min_count={min_count} times)"
        )
    return vocab
