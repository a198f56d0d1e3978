"""Readers for the intrinsic benchmarks and word lists; `evaluate` and `extract` both read through them.

Formats (UTF-8, a BOM is ignored, blank lines are skipped everywhere):
  similarity  `word1<TAB>word2<TAB>score`; the first row is a header, and skipped, when its score field is
              not a number at all (`word1<TAB>word2<TAB>score`); on any other row, or a first row scored
              `nan`/`inf`, a bad score is an error naming the line.
  analogy     word2vec format: `: section` lines, then `a b c d` questions (d is the answer).
  word list   one word per line.
`benchmark_words` tells the three apart by the first non-blank line: a tab means similarity; a leading `:`
or four space-separated words mean analogy; anything else is a word list. Words are kept as written
unless `lowercase` is set; `extract` always sets it (the prepared vocabulary is lower-cased), `evaluate`
when `evaluate.lowercase` is true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from embedforge.core.errors import EmbedforgeError


@dataclass(frozen=True)
class Pair:
    """One human-scored word pair, with its line number in the file."""

    word1: str
    word2: str
    score: float
    line: int


@dataclass(frozen=True)
class Analogy:
    """One question `a : b :: c : d` (d is the answer) and the section it belongs to."""

    a: str
    b: str
    c: str
    d: str
    section: str


def benchmark_name(path: str | Path) -> str:
    """The metric key of a benchmark file: its stem (`wordsim240.tsv` -> `wordsim240`)."""
    return Path(path).stem


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a UTF-8 text file with their 1-based numbers."""
    if not path.is_file():
        raise EmbedforgeError(f"{path}: benchmark file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise EmbedforgeError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    return [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _fields(n: int, noun: str) -> str:
    """`1 field`, `4 words`: how a bad row is described (its content is never echoed: a path may name any
    file, and a message must not leak what it holds)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_pairs(path: str | Path, lowercase: bool = False) -> list[Pair]:
    """Read `word1<TAB>word2<TAB>score` rows (after an optional header, see the module docstring).

    A malformed row or score is an error naming the line.
    """
    path = Path(path)
    pairs = []
    for i, (n, line) in enumerate(_lines(path)):
        fields = [f.strip() for f in line.split("\t")]
        if i == 0 and len(fields) == 3 and not _is_number(fields[2]):
            continue  # a header such as `word1<TAB>word2<TAB>score`
        if len(fields) != 3 or not fields[0] or not fields[1]:
            raise EmbedforgeError(
                f"{path} line {n}: expected word1<TAB>word2<TAB>score, got {_fields(len(fields), 'field')}"
                f"{'' if len(fields) != 3 else ' with an empty word'}"
            )
        try:
            score = float(fields[2])
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise EmbedforgeError(f"{path} line {n}: the score (field 3) is not a finite number")
        w1, w2 = (fields[0].lower(), fields[1].lower()) if lowercase else (fields[0], fields[1])
        pairs.append(Pair(w1, w2, score, n))
    if not pairs:
        raise EmbedforgeError(f"{path}: no word pairs found")
    return pairs


def read_analogies(path: str | Path, lowercase: bool = False) -> list[Analogy]:
    """Read `: section` headers and `a b c d` questions; any other row is an error naming the line."""
    path = Path(path)
    questions, section = [], ""
    for n, line in _lines(path):
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.lower().split() if lowercase else line.split()
        if len(words) != 4:
            raise EmbedforgeError(
                f"{path} line {n}: expected four words 'a b c d', got {_fields(len(words), 'word')}"
            )
        a, b, c, d = words
        questions.append(Analogy(a, b, c, d, section))
    if not questions:
        raise EmbedforgeError(f"{path}: no analogy questions found")
    return questions


def read_word_list(path: str | Path, lowercase: bool = False) -> list[str]:
    """Read a word list, one word per line; a line holding spaces is an error naming the line."""
    path = Path(path)
    words = []
    for n, line in _lines(path):
        word = line.strip()
        if len(word.split()) != 1:
            raise EmbedforgeError(
                f"{path} line {n}: expected one word per line, got {_fields(len(word.split()), 'word')}"
            )
        words.append(word.lower() if lowercase else word)
    return words


def benchmark_words(path: str | Path, lowercase: bool = False) -> list[str]:
    """Every word of a similarity, analogy or word-list file, in file order (format: module docstring)."""
    path = Path(path)
    lines = _lines(path)
    first = lines[0][1] if lines else ""
    if "\t" in first:
        return [w for p in read_pairs(path, lowercase) for w in (p.word1, p.word2)]
    if first.startswith(":") or len(first.split()) == 4:
        return [w for q in read_analogies(path, lowercase) for w in (q.a, q.b, q.c, q.d)]
    return read_word_list(path, lowercase)


def benchmark_pairs(path: str | Path, lowercase: bool = False) -> set[tuple[str, str]]:
    """The word pairs a benchmark file scores, each as a sorted (a, b) with a != b, so one entry stands
    for both orders: a similarity file's pairs; an analogy question's six pairs of its four words; a word
    list has none."""
    path = Path(path)
    lines = _lines(path)
    first = lines[0][1] if lines else ""
    groups: list[tuple[str, ...]]
    if "\t" in first:
        groups = [(p.word1, p.word2) for p in read_pairs(path, lowercase)]
    elif first.startswith(":") or len(first.split()) == 4:
        groups = [(q.a, q.b, q.c, q.d) for q in read_analogies(path, lowercase)]
    else:
        read_word_list(path, lowercase)  # validated like every benchmark file; it scores no pair
        return set()
    return {
        (min(a, b), max(a, b))
        for words in groups
        for i, a in enumerate(words)
        for b in words[i + 1 :]
        if a != b
    }
