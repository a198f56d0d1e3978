"""The words to extract: the prepared (or `extract.corpus`) vocabulary plus extra word-list files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from embedforge.core.benchmarks import benchmark_words
from embedforge.core.errors import EmbedforgeError
from embedforge.core.prepared import PreparedData
from embedforge.core.text import count_words, vocab_table
from embedforge.extract.shard import ONE_PROCESS, Shard


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
    return _with_extra(
        words, counts, extra_files, f"{prepared.vocab_path}: vocabulary is empty", "prepare.min_count"
    )


def corpus_vocabulary(
    sentences: Iterable[list[str]],
    min_count: int,
    max_size: int,
    extra_files: Sequence[str | Path] = (),
    shard: Shard = ONE_PROCESS,
) -> Vocabulary:
    """Words counted in a stream of segmented sentences (`prepare`'s rules: `segment.build_vocab`), plus
    the extra files' new words. Memory: one count per distinct word, never the corpus. Under torchrun
    each rank counts its share of the sentences and the counts are summed (`Shard.sum_counts`): the
    vocabulary is the one a single process counts."""
    try:
        df = vocab_table(shard.sum_counts(count_words(sentences)), min_count, max_size)
        words, counts = df["word"].tolist(), [int(c) for c in df["count"]]
    except EmbedforgeError:  # no word reaches min_count: the extra words may still make a vocabulary
        words, counts = [], []
    empty = f"extract.corpus: no word occurs {min_count} times or more"
    return _with_extra(words, counts, extra_files, empty, "extract.min_count")


def _with_extra(
    words: list[str], counts: list[int], extra_files: Sequence[str | Path], empty: str, knob: str
) -> Vocabulary:
    """`words` followed by the extra files' new words (file order); an error when there is none at all."""
    known = set(words)
    for path in extra_files:
        for word in benchmark_words(path, lowercase=True):
            if word not in known:
                known.add(word)
                words.append(word)
                counts.append(0)
    if not words:
        raise EmbedforgeError(
            f"{empty} and extract.extra_words adds no word; "
            f"expected at least one word (lower {knob} or add word lists)"
        )
    return Vocabulary(words=words, counts=counts)
