"""A fast word segmenter inside Hugging Face `tokenizers` (Rust): forward maximum matching over a word list.

jieba is pure Python and bounds every model that reads raw text through it (a mean-of-vectors classifier runs
faster than jieba segments). This segmenter does the work in `tokenizers` instead, as one `tokenizer.json`
that model2vec, sentence-transformers and our own consumers load alike:

- normalizer: NFKC, then lower case (as `core.text` does), unless a word of the list has upper case;
- pre-tokenizer (Chinese): one regular expression splits the text into runs of the CJK characters the word
  list uses (at most `max_run` characters a run), single other CJK characters, runs of other letters and
  digits, and single punctuation characters; whitespace is dropped;
- model (Chinese): WordPiece over the words with an empty continuation prefix, so its greedy
  longest-match-first inside a run is forward maximum matching over the word list. Every CJK character of
  a word is also an entry, so a run always matches to its end (WordPiece would otherwise turn the whole
  run into one [UNK]);
- English: the same regular expression as `core.text` (words, with inner apostrophes, and single punctuation
  characters) and a WordLevel model, so a word is matched whole or not at all.

A piece that is no entry (punctuation, a character or word outside the list) comes out of `segment` as its
own normalised text, as jieba would return it; in the tokenizer's ids it is `[UNK]`, which model2vec drops.
Ids: the words in the order given, then the characters added for matching, then `[UNK]`.
A word that mixes CJK with other characters (`qq群`) or holds whitespace or punctuation is never produced.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Encoding, Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import Model, WordLevel, WordPiece

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import write_text

UNK = "[UNK]"
LANGUAGES = ("zh", "en")
MAX_RUN = 200  # CJK characters a run: WordPiece's cost grows with the square of a run's length
MAX_RANGES = 10_000  # Oniguruma's limit on the ranges of one character class
# The CJK Unified Ideographs blocks (BERT's `_is_chinese_char`), as code-point ranges.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
EN_PATTERN = r"[^\W_]+(?:['’][^\W_]+)*|[^\w\s]"  # core.text's English word tokenizer


def is_cjk(char: str) -> bool:
    """A CJK ideograph: text without spaces between words, which forward maximum matching segments."""
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in CJK_RANGES)


def _ranges(codes: Sequence[int]) -> list[list[int]]:
    """Sorted code points as [first, last] runs of consecutive ones."""
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return ranges


def char_class(codes: Sequence[int]) -> str:
    """A regex class body for sorted code points, consecutive ones as ranges."""
    return "".join(rf"\x{{{lo:X}}}" + (rf"-\x{{{hi:X}}}" if hi > lo else "") for lo, hi in _ranges(codes))


def match_chars(words: Sequence[str], limit: int = MAX_RANGES) -> str:
    """The CJK characters of `words`, plus, past `limit` ranges, those of the smallest gaps between them."""
    codes = sorted({ord(c) for w in words for c in w if is_cjk(c)})
    ranges = _ranges(codes)
    if len(ranges) <= limit:
        return "".join(map(chr, codes))
    gaps = sorted(range(1, len(ranges)), key=lambda i: (ranges[i][0] - ranges[i - 1][1], i))
    filled = {c for i in gaps[: len(ranges) - limit] for c in range(ranges[i - 1][1] + 1, ranges[i][0])}
    return "".join(map(chr, sorted({*codes, *filled})))


def zh_pattern(chars: str, max_run: int = MAX_RUN) -> str:
    """The Chinese pre-tokenizer's pattern: runs of `chars`, single other CJK, other runs, punctuation."""
    cjk = "".join(rf"\x{{{lo:X}}}-\x{{{hi:X}}}" for lo, hi in CJK_RANGES)
    runs = f"[{char_class(sorted(map(ord, chars)))}]{{1,{max_run}}}|" if chars else ""
    return rf"{runs}[{cjk}]|[^\W_{cjk}]+|[^\w\s]|_"


def _regex(pattern: str) -> Regex:
    try:
        return Regex(pattern)
    except Exception as err:  # tokenizers raises a bare Exception for Oniguruma's errors
        raise EmbedforgeError(f"word segmenter: the pre-tokenizer's pattern does not compile: {err}") from err


def _check_words(words: Sequence[str], language: str) -> None:
    if language not in LANGUAGES:
        raise EmbedforgeError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    if not words:
        raise EmbedforgeError("word segmenter: the word list is empty; expected at least one word")
    seen: set[str] = set()
    for i, word in enumerate(words):
        if not word or word == UNK or word in seen:
            what = "empty" if not word else "the unknown token" if word == UNK else "a repeat"
            raise EmbedforgeError(f"word segmenter: word {i} ({word!r}) is {what}; expected unique words")
        seen.add(word)


def _entries(words: Sequence[str], language: str) -> tuple[dict[str, int], str]:
    """Token -> id (words, then the CJK characters they use that are no word, then [UNK]); those chars."""
    chars = match_chars(words) if language == "zh" else ""
    vocab = {w: i for i, w in enumerate(words)}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    vocab[UNK] = len(vocab)
    return vocab, chars


def _model(vocab: dict[str, int], language: str, max_run: int) -> Model:
    if language == "en":
        return WordLevel(vocab, unk_token=UNK)
    # An empty continuation prefix: a word continues a match as itself, so greedy WordPiece = FMM.
    return WordPiece(vocab, unk_token=UNK, continuing_subword_prefix="", max_input_chars_per_word=max_run)


def _lowercases(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer's normalizer is NFKC + lower case (else NFKC only); another one is an error."""
    spec = json.loads(tokenizer.to_str())["normalizer"] or {}
    steps = [step.get("type") for step in spec.get("normalizers", [spec])]
    if steps not in (["NFKC"], ["NFKC", "Lowercase"]):
        raise EmbedforgeError(
            f"word segmenter: the tokenizer's normalizer is {steps}; "
            "expected ['NFKC'] or ['NFKC', 'Lowercase']"
        )
    return steps[-1] == "Lowercase"


def python_pattern(tokenizer: Tokenizer) -> re.Pattern[str] | None:
    """The pre-tokenizer's pattern for Python's `re` (its `\\x{HHHH}` as `\\UHHHHHHHH`); None if not ours."""
    spec = json.loads(tokenizer.to_str())["pre_tokenizer"] or {}
    pattern = spec.get("pattern", {}).get("Regex") if spec.get("type") == "Split" else None
    if pattern is None:
        return None
    return re.compile(re.sub(r"\\x\{([0-9A-F]+)\}", lambda m: f"\\U{int(m.group(1), 16):08X}", pattern))


class WordSegmenter:
    """Forward maximum matching over a word list, batched in Rust; see the module docstring for the rules."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._unk_id = tokenizer.token_to_id(UNK)
        if self._unk_id is None:
            raise EmbedforgeError(f"word segmenter: the tokenizer has no {UNK!r} token")
        self._lower = _lowercases(tokenizer)
        # `segment` normalises in Python (C) and runs this copy without the normalizer, through
        # `encode_batch_fast` (ids only: no offsets to track, twice as fast as `encode_batch`); the text of
        # an [UNK] piece is then found by re-splitting the text with the pre-tokenizer's own pattern.
        self._bare = Tokenizer.from_str(tokenizer.to_str())
        self._bare.normalizer = None
        self._names = [""] * tokenizer.get_vocab_size()
        for token, i in tokenizer.get_vocab().items():
            self._names[i] = token
        self._pieces = python_pattern(tokenizer)

    @classmethod
    def build(cls, words: Sequence[str], language: str, max_run: int = MAX_RUN) -> WordSegmenter:
        """A segmenter whose ids 0..len(words)-1 are `words` in order (the rows of their matrix)."""
        _check_words(words, language)
        vocab, chars = _entries(words, language)
        tokenizer = Tokenizer(_model(vocab, language, max_run))
        steps: list[normalizers.Normalizer] = [normalizers.NFKC()]
        if all(w == w.lower() for w in words):
            steps.append(normalizers.Lowercase())
        tokenizer.normalizer = normalizers.Sequence(steps)
        pattern = EN_PATTERN if language == "en" else zh_pattern(chars, max_run)
        # invert: the pattern's matches are the pieces; what lies between them (whitespace) is dropped
        tokenizer.pre_tokenizer = pre_tokenizers.Split(_regex(pattern), behavior="removed", invert=True)
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | Path) -> WordSegmenter:
        """A segmenter saved by `save`."""
        path = Path(path)
        if not path.is_file():
            raise EmbedforgeError(f"{path}: no such tokenizer file; expected a tokenizer.json from save()")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception for a malformed file
            raise EmbedforgeError(f"{path}: not a tokenizers tokenizer.json ({err})") from err
        return cls(tokenizer)

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer as one tokenizer.json (atomically); return its path."""
        write_text(path, self.tokenizer.to_str(pretty=False))
        return Path(path)

    def normalize(self, text: str) -> str:
        """The text as the tokenizer's normalizer leaves it (NFKC, then lower case when the words are), BOMs
        removed as `core.text.normalize_text` removes them."""
        text = unicodedata.normalize("NFKC", text).replace("\ufeff", "")
        return text.lower() if self._lower else text

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """The full tokenizer's encodings (ids, offsets into `texts`), in parallel (RAYON_NUM_THREADS)."""
        return self.tokenizer.encode_batch(list(texts), add_special_tokens=False)

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text -> its token ids (normalised inside the tokenizer; no offsets tracked: the fastest way
        in). Ids below the number of words given to `build` are those words; the rest are the matching
        characters and [UNK]."""
        return [enc.ids for enc in self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]

    def segment(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text -> its words; a piece that is no entry comes out as its own normalised text."""
        normalized = [self.normalize(t) for t in texts]
        encodings = self._bare.encode_batch_fast(normalized, add_special_tokens=False)
        out = []
        for text, enc in zip(normalized, encodings, strict=True):
            words = self._aligned(text, enc.ids)
            out.append(self._with_offsets(text) if words is None else words)
        return out

    def _aligned(self, text: str, ids: list[int]) -> list[str] | None:
        """The tokens of `ids`, each [UNK] replaced by its piece of `text`; None where pieces and ids disagree
        (Python's and Oniguruma's character classes differ at a few rare characters)."""
        tokens = [self._names[i] for i in ids]
        if self._unk_id not in ids:
            return tokens
        if self._pieces is None:
            return None
        pieces = self._pieces.findall(text)
        piece = used = 0  # the piece the next token falls in; how much of it earlier tokens covered
        try:
            for k, token_id in enumerate(ids):
                if token_id == self._unk_id:  # WordPiece / WordLevel: [UNK] is always one whole piece
                    if used:
                        return None
                    tokens[k] = pieces[piece]
                    piece += 1
                    continue
                used += len(tokens[k])
                if used == len(pieces[piece]):
                    piece, used = piece + 1, 0
        except IndexError:
            return None
        return tokens if piece == len(pieces) and not used else None

    def _with_offsets(self, text: str) -> list[str]:
        """One normalised text through the offset-tracking encoder: each [UNK] is its span of `text`."""
        enc = self._bare.encode(text, add_special_tokens=False)
        spans = zip(enc.ids, enc.tokens, enc.offsets, strict=True)
        return [text[start:end] if i == self._unk_id else token for i, token, (start, end) in spans]
