"""WordVectors: one object owning an embedding matrix and its vocabulary (cf. gensim's KeyedVectors).

On disk a matrix `<name>` is two files side by side:
  `<name>.safetensors`   tensor `weight`, float32, shape [V, d]
  `<name>.vocab.parquet` one row per matrix row, in order: `word` (str), `count` (int64), and
                         `method` (str: how the row was obtained), `contexts` (int: contexts used)

`load_embedding(path)` turns such a matrix into a `torch.nn.Embedding` plus a `Vocab` whose `lookup`
maps words to row ids; words outside the vocabulary get a vector by the unknown-word policy.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, read_parquet, write_parquet
from embedforge.core.params import UNKNOWN_POLICIES, Unknown

VOCAB_SUFFIX = ".vocab.parquet"
# Maps words to vectors [n, d]; used by the `subword` policy (see embedforge.core.encoder.SubwordComposer).
Composer = Callable[[list[str]], torch.Tensor]


def _stem(path: str | Path) -> Path:
    """`embeddings/x.safetensors`, `embeddings/x.vocab.parquet` or `embeddings/x` -> `embeddings/x`."""
    path = Path(path)
    name = path.name
    for suffix in (".safetensors", VOCAB_SUFFIX):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


def _sibling(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


@dataclass
class WordVectors:
    """A [V, d] float32 matrix whose row i is the vector of `words[i]`, plus per-word info."""

    words: list[str]
    weight: torch.Tensor
    info: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        if self.weight.ndim != 2 or self.weight.shape[0] != len(self.words):
            raise EmbedforgeError(
                f"matrix shape {tuple(self.weight.shape)} does not match {len(self.words)} words"
            )
        self.weight = self.weight.detach().to(torch.float32).contiguous()
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise EmbedforgeError("vocabulary has duplicate words")

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def unit(self) -> torch.Tensor:
        """Rows scaled to unit length (zero rows stay zero); cached until `weight` is replaced."""
        cached = self.__dict__.get("_unit")
        if cached is None or cached[0] is not self.weight:
            cached = (self.weight, torch.nn.functional.normalize(self.weight, dim=1))
            self.__dict__["_unit"] = cached
        return cached[1]

    def _row(self, word: str) -> int:
        if word not in self.index:
            raise KeyError(f"{word!r} is not in the vocabulary")
        return self.index[word]

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two words of the vocabulary (KeyError for an unknown word)."""
        return float(self.unit[self._row(word1)] @ self.unit[self._row(word2)])

    def most_similar(self, query: str | torch.Tensor, topn: int = 10) -> list[tuple[str, float]]:
        """The `topn` words nearest by cosine to a word (itself excluded) or to a vector [d]."""
        if isinstance(query, str):
            row: int | None = self._row(query)
            target = self.unit[row]
        else:
            row, target = None, torch.nn.functional.normalize(query.to(torch.float32), dim=0)
        sims = self.unit @ target
        if row is not None:
            sims[row] = float("-inf")
        top = torch.topk(sims, min(topn, len(self) - (row is not None)))
        pairs = zip(top.values.tolist(), top.indices.tolist(), strict=True)
        return [(self.words[i], float(v)) for v, i in pairs]

    def save(self, path: str | Path) -> Path:
        """Write `<stem>.safetensors` and `<stem>.vocab.parquet` atomically; return the stem."""
        stem = _stem(path)
        info = self.info.copy() if len(self.info) else pd.DataFrame(index=range(len(self.words)))
        info = info.reset_index(drop=True).drop(columns=["word"], errors="ignore")
        info.insert(0, "word", self.words)
        with atomic_path(_sibling(stem, ".safetensors")) as tmp:
            save_file({"weight": self.weight}, str(tmp))
        write_parquet(_sibling(stem, VOCAB_SUFFIX), info)
        return stem

    @classmethod
    def load(cls, path: str | Path) -> WordVectors:
        """Read a matrix written by `save` (path to either file or the common stem)."""
        stem = _stem(path)
        tensor_path = _sibling(stem, ".safetensors")
        if not tensor_path.is_file():
            raise EmbedforgeError(f"{tensor_path}: embedding file not found")
        try:
            tensors = load_file(str(tensor_path))
        except (SafetensorError, OSError) as err:
            raise EmbedforgeError(
                f"{tensor_path}: truncated or corrupt safetensors file ({str(err).splitlines()[0]}); "
                "expected the matrix `extract` wrote (rerun it)"
            ) from None
        if "weight" not in tensors:
            raise EmbedforgeError(f"{tensor_path}: expected a tensor named 'weight'")
        info = read_parquet(_sibling(stem, VOCAB_SUFFIX))
        if "word" not in info:
            raise EmbedforgeError(f"{stem}{VOCAB_SUFFIX}: expected a 'word' column")
        words = info["word"].astype(str).tolist()
        _check_matrix(tensors["weight"], len(words), tensor_path)
        return cls(words=words, weight=tensors["weight"], info=info.drop(columns=["word"]))

    def unknown_vectors(
        self, words: list[str], unknown: Unknown = "mean", seed: int = 0, composer: Composer | None = None
    ) -> torch.Tensor:
        """Vectors [n, d] for words outside the vocabulary, by the unknown-word policy.

        zeros: all-zero rows; mean: the mean row; random: normal noise with the matrix's per-entry
        std, seeded per word (so a word's vector does not depend on which other words are asked);
        subword: `composer(words)`, e.g. the mean of the word's pieces in a model's input table.
        """
        n, d = len(words), self.dim
        if unknown == "zeros" or (n and not len(self) and unknown == "mean"):
            return torch.zeros(n, d)
        if unknown == "mean":
            return self.weight.mean(0, keepdim=True).expand(n, d).clone()
        if unknown == "random":
            std = float(self.weight.std()) if self.weight.numel() > 1 else 1.0
            rows = [
                torch.randn(d, generator=torch.Generator().manual_seed(seed + zlib.crc32(w.encode())))
                for w in words
            ]
            return (torch.stack(rows) * std) if rows else torch.zeros(0, d)
        if unknown == "subword":
            if composer is None:
                raise EmbedforgeError("unknown='subword' needs a model folder (model_dir) to compose from")
            out = composer(words).to(torch.float32)
            if out.shape != (n, d):
                raise EmbedforgeError(
                    f"unknown='subword': the model's input table gives {tuple(out.shape)[1:]}-d vectors; "
                    f"expected {d}-d to match the matrix"
                )
            return out
        raise EmbedforgeError(
            f"unknown-word policy {unknown!r}; expected one of {', '.join(UNKNOWN_POLICIES)}"
        )

    def vectors(
        self, words: Iterable[str], unknown: Unknown = "mean", seed: int = 0, composer: Composer | None = None
    ) -> torch.Tensor:
        """Vectors [n, d] for `words`: their rows, or the unknown-word policy for words not in the matrix."""
        words = list(words)
        out = torch.empty(len(words), self.dim)
        known = [i for i, w in enumerate(words) if w in self.index]
        missing = [i for i, w in enumerate(words) if w not in self.index]
        if known:
            out[known] = self.weight[[self.index[words[i]] for i in known]]
        if missing:
            out[missing] = self.unknown_vectors([words[i] for i in missing], unknown, seed, composer)
        return out

    def save_word2vec(self, path: str | Path, binary: bool = False) -> Path:
        """Write the word2vec text format (`V d` header, then `word v1 ... vd`), atomically.

        `binary`: the format of word2vec.c and gensim (`binary=True`): after the same header, each word,
        a space, its d little-endian float32 values, and a newline.
        """
        path = Path(path)
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            fh.write(f"{len(self)} {self.dim}\n".encode())
            for word, row in zip(self.words, self.weight.numpy(), strict=True):
                # the format separates fields by spaces: keep a multi-token word as one field
                token = "_".join(word.split()).encode("utf-8") + b" "
                values = row.astype("<f4").tobytes() if binary else " ".join(f"{x:.6g}" for x in row).encode()
                fh.write(token + values + b"\n")
        return path

    def save_projector(self, stem: str | Path) -> tuple[Path, Path]:
        """Write the TensorBoard-projector pair `<stem>.tsv` (vectors) and `<stem>.meta.tsv` (metadata)."""
        stem = Path(stem)
        vec_path, meta_path = _sibling(stem, ".tsv"), _sibling(stem, ".meta.tsv")
        with atomic_path(vec_path) as tmp, tmp.open("w", encoding="utf-8") as fh:
            for row in self.weight.numpy():
                fh.write("\t".join(f"{x:.6g}" for x in row) + "\n")
        cols = [c for c in ("count", "method", "contexts") if c in self.info]
        meta = pd.DataFrame({"word": [" ".join(w.split()) for w in self.words]})
        for col in cols:
            meta[col] = self.info[col].to_numpy()
        with atomic_path(meta_path) as tmp:
            # the projector wants a header only when there is more than one column
            meta.to_csv(tmp, sep="\t", index=False, header=len(meta.columns) > 1, encoding="utf-8")
        return vec_path, meta_path

    @classmethod
    def load_word2vec(cls, path: str | Path, keep: set[str] | None = None) -> WordVectors:
        """Read a word2vec text or binary file (binary: not UTF-8 text); only the `keep` words if given."""
        path = Path(path)
        if not path.is_file():
            raise EmbedforgeError(f"{path}: word-vector file not found")
        with path.open("rb") as fh:
            header = fh.readline().split()
            try:
                n, d = int(header[0]), int(header[1])
            except (IndexError, ValueError):
                raise EmbedforgeError(f"{path} line 1: expected a word2vec header 'count dim'") from None
            binary = _looks_binary(fh.read(4096))
            fh.seek(0)
            fh.readline()
            words, rows = (_read_w2v_binary if binary else _read_w2v_text)(fh, path, n, d, keep)
        weight = torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, d)
        return cls(words=words, weight=weight)


def _check_matrix(weight: torch.Tensor, words: int, path: Path) -> None:
    """A saved matrix must be floating point, [words, d] with d > 0, and finite everywhere."""
    if not weight.is_floating_point() or weight.ndim != 2 or weight.shape[0] != words or not weight.shape[1]:
        raise EmbedforgeError(
            f"{path}: tensor 'weight' is {str(weight.dtype).removeprefix('torch.')} of shape "
            f"{list(weight.shape)}; expected a float matrix [{words}, d] (one row per word of the "
            f"{VOCAB_SUFFIX} file)"
        )
    bad = ~torch.isfinite(weight).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten()
        raise EmbedforgeError(
            f"{path}: {len(rows)} of {words} rows hold NaN or infinite values (first: row {int(rows[0])}); "
            "expected finite numbers"
        )


def _looks_binary(sample: bytes) -> bool:
    """True when the bytes after the header are not UTF-8 text (the binary format stores raw float32)."""
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(sample) - 4  # a cut multi-byte character at the end is still text
    return False


def _read_w2v_text(fh, path: Path, n: int, d: int, keep: set[str] | None):  # noqa: ANN001, ANN202
    words, rows, seen = [], [], set()
    for lineno, raw in enumerate(fh, start=2):
        parts = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip().split(" ")
        if len(parts) != d + 1:
            raise EmbedforgeError(f"{path} line {lineno}: expected a word and {d} numbers")
        word = parts[0]
        if (keep is None or word in keep) and word not in seen:
            seen.add(word)
            words.append(word)
            try:
                rows.append(np.asarray(parts[1:], dtype=np.float32))
            except ValueError:
                raise EmbedforgeError(f"{path} line {lineno}: expected a word and {d} numbers") from None
    return words, rows


def _read_w2v_binary(fh, path: Path, n: int, d: int, keep: set[str] | None):  # noqa: ANN001, ANN202
    words, rows, seen = [], [], set()
    for i in range(n):
        chars = bytearray()
        while (ch := fh.read(1)) != b" ":
            if not ch:
                raise EmbedforgeError(f"{path}: binary word2vec file ends at entry {i + 1} of {n}")
            if ch != b"\n":
                chars += ch
        vec = fh.read(4 * d)
        if len(vec) != 4 * d:
            raise EmbedforgeError(f"{path}: binary word2vec file ends at entry {i + 1} of {n}")
        word = chars.decode("utf-8", errors="replace")
        if (keep is None or word in keep) and word not in seen:
            seen.add(word)
            words.append(word)
            rows.append(np.frombuffer(vec, dtype="<f4").copy())
    return words, rows


@dataclass
class Vocab:
    """Row ids of an embedding loaded by `load_embedding`.

    Unknown words map to `unk_index` (the row after the words); with `padding=True` one more zero row,
    `pad_index`, follows it for `nn.Embedding(padding_idx=...)` (else `pad_index` is None).
    """

    words: list[str]
    info: pd.DataFrame
    padding: bool = False

    def __post_init__(self) -> None:
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        self.unk_index = len(self.words)
        self.pad_index: int | None = self.unk_index + 1 if self.padding else None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def lookup(self, words: str | Iterable[str]) -> torch.Tensor:
        """Row ids (LongTensor) of `words` (one word -> a 0-d tensor); unknown words -> `unk_index`."""
        if isinstance(words, str):
            return torch.tensor(self.index.get(words, self.unk_index))
        return torch.tensor([self.index.get(w, self.unk_index) for w in words], dtype=torch.long)


class LoadOptions(TypedDict, total=False):
    """The keywords of `load_embedding` (and of `load_recommended`, which passes them on); defaults in
    `LOAD_DEFAULTS`."""

    unknown: Unknown
    seed: int
    words: Iterable[str] | None
    model_dir: str | Path | None
    freeze: bool
    padding: bool


LOAD_DEFAULTS: LoadOptions = {
    "unknown": "mean",
    "seed": 0,
    "words": None,
    "model_dir": None,
    "freeze": True,
    "padding": False,
}


def load_embedding(path: str | Path, **options: Unpack[LoadOptions]) -> tuple[torch.nn.Embedding, Vocab]:
    """Load a saved matrix as `nn.Embedding` [V (+ added words) + 1 (+ 1 padding), d] and its `Vocab`.

    Keywords (all optional): `unknown="mean"` (the unknown-word policy: zeros, mean, random, subword),
    `seed=0`, `words=None`, `model_dir=None`, `freeze=True`, `padding=False`.
    Words in `words` that the matrix lacks get their own rows by the unknown-word policy (`subword`
    composes them from the input table of the model in `model_dir`); one last row, `vocab.unk_index`,
    serves every other unknown word (zeros, the mean row, or seeded noise; the mean row for `subword`).
    With `padding=True` a zero row `vocab.pad_index` follows, and the layer is built with that `padding_idx`.
    """
    unexpected = sorted(set(options) - set(LOAD_DEFAULTS))
    if unexpected:
        known = ", ".join(LOAD_DEFAULTS)
        raise TypeError(f"load_embedding: unexpected keyword {unexpected[0]!r}; expected one of {known}")
    o: LoadOptions = {**LOAD_DEFAULTS, **options}
    unknown, seed, words = o["unknown"], o["seed"], o["words"]
    model_dir, freeze, padding = o["model_dir"], o["freeze"], o["padding"]
    wv = WordVectors.load(path)
    composer = None
    if unknown == "subword":
        if model_dir is None:
            raise EmbedforgeError(
                "load_embedding: unknown='subword' needs model_dir (the model to compose from)"
            )
        from embedforge.core.encoder import SubwordComposer  # loads transformers: only for this policy

        composer = SubwordComposer(model_dir)
    added = [w for w in dict.fromkeys(words or []) if w not in wv]
    extra = wv.unknown_vectors(added, unknown, seed, composer)
    unk = wv.unknown_vectors(["<unk>"], "mean" if unknown == "subword" else unknown, seed)
    weight = torch.cat([wv.weight, extra, unk, torch.zeros(int(padding), wv.dim)])
    info = wv.info.copy() if len(wv.info) else pd.DataFrame(index=range(len(wv)))
    if added:
        info = pd.concat(
            [info, pd.DataFrame({"method": [f"unknown:{unknown}"] * len(added)})], ignore_index=True
        )
    vocab = Vocab(words=wv.words + added, info=info.reset_index(drop=True), padding=padding)
    return torch.nn.Embedding.from_pretrained(weight, freeze=freeze, padding_idx=vocab.pad_index), vocab
