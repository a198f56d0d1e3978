"""The word vocabulary to extract: the prepared corpus vocabulary plus extra word-list files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedforge.core.errors import EmbedforgeError
from embedforge.core.prepared import PreparedData


@dataclass(frozen=True)
class Vocabulary:
    """Words to extract (matrix row order) and their training-corpus counts (0 for extra words)."""

    words: list[str]
    counts: list[int]

    def __len__(self) -> int:
        return len(self.words)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_word_list(path: str | Path) -> list[str]:
    """Words of a list file: one word a line, `w1<TAB>w2<TAB>score` similarity files, or analogy lines.

    Tab-separated lines give every field but a numeric last one (a first line without a numeric last
    field is a header); other lines give all their space-separated tokens. Lines starting with `:`
    (analogy section headers) or `#` are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise EmbedforgeError(f"{path}: word-list file not found (extract.extra_words)")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise EmbedforgeError(
            f"{path}: not UTF-8 text (bad byte at offset {err.start}); expected a UTF-8 word list"
        ) from None
    words: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith((":", "#")):
            continue
        if "\t" in line:
            fields = [f.strip() for f in line.split("\t")]
            if _is_number(fields[-1]):
                fields = fields[:-1]
            elif lineno == 1:
                continue  # header row such as `word1  word2  score`
        else:
            fields = line.split()
        words.extend(f.lower() for f in fields if f)
    return words


def build_vocabulary(prepared: PreparedData, extra_files: Sequence[str | Path] = ()) -> Vocabulary:
    """Corpus vocabulary (frequency order) followed by the extra files' new words (file order)."""
    df = prepared.vocab()
    words = df["word"].astype(str).tolist()
    counts = [int(c) for c in df["count"]]
    known = set(words)
    for path in extra_files:
        for word in read_word_list(path):
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
