"""Readers for the intrinsic benchmarks: word-similarity pairs and word2vec-format analogies."""

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
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise EmbedforgeError(f"{path}: not UTF-8 text") from None
    return [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_pairs(path: str | Path, lowercase: bool = False) -> list[Pair]:
    """Read `word1<TAB>word2<TAB>score` rows; a malformed row or score is an error naming the line."""
    path = Path(path)
    pairs = []
    for n, line in _lines(path):
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3 or not fields[0] or not fields[1]:
            raise EmbedforgeError(f"{path} line {n}: expected word1<TAB>word2<TAB>score, got {line[:60]!r}")
        try:
            score = float(fields[2])
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise EmbedforgeError(f"{path} line {n}: score {fields[2]!r} is not a number")
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
            raise EmbedforgeError(f"{path} line {n}: expected four words 'a b c d', got {line[:60]!r}")
        questions.append(Analogy(*words, section=section))
    if not questions:
        raise EmbedforgeError(f"{path}: no analogy questions found")
    return questions
