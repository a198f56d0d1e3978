"""The word vocabulary to extract: the prepared corpus vocabulary plus extra word-list files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedforge.core.benchmarks import benchmark_words
from embedforge.core.errors import EmbedforgeError
from embedforge.core.prepared import PreparedData


@dataclass(frozen=True)
class Vocabulary:
    """Words to extract (matrix row order) and their training-corpus counts (0 for extra words)."""

    words: list[str]
    counts: list[int]

    def __len__(self) -> int:
        return len(self.words)


def build_vocabulary(prepared: PreparedData, extra_files: Sequence[str | Path] = ()) -> Vocabulary:
    """Corpus vocabulary (frequency order) followed by the extra files' new words (file order).

    Extra files are similarity, analogy or word-list files, read by `core.benchmarks.benchmark_words`
    (the readers `evaluate` uses) and lower-cased, as the prepared vocabulary is.
    """
    df = prepared.vocab()
    words = df["word"].astype(str).tolist()
    counts = [int(c) for c in df["count"]]
    known = set(words)
    for path in extra_files:
        for word in benchmark_words(path, lowercase=True):
            if word not in known:
                known.add(word)
                words.append(word)
                counts.append(0)
    if not words:
        raise EmbedforgeError(
            f"{prepared.vocab_path}: vocabulary is empty and extract.extra_words adds no word; "
            "expected at least one word (lower prepare.min_count or add word lists)"
        )
    return Vocabulary(words=words, counts=counts)
