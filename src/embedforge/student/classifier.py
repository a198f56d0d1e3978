"""The shipped student (models/student/): raw text in, label names out, with no transformer anywhere.

Layout (written only by `Classifier.save`, read only by `Classifier.load` / `embedforge.load_classifier`):
  `config.json`        FORMAT, the consumer and its sizes, the label names, the language and segmenter, the
                       matrix it was trained from (name and md5), the storage dtype of the word vectors
  `vocab.txt`          one word per line: line i is row i of the word table (the row after the last word
                       is the padding row, all zeros)
  `model.safetensors`  the consumer's weights (the word table in `dtype`, everything else float32)
  `model.onnx`         the same model for onnxruntime: padded row ids [texts, words] -> logits
  `tokenizer.json`     `segmenter: fmm` only: the word segmenter (core/segmenter.py) whose ids 0..vocab_size-1
                       are the rows, so `tokenizers` + onnxruntime run the model without embedforge

The segmenter (`config.json` `segmenter`) is the one the student was trained with: `jieba` normalises and
segments a text exactly as `prepare` segments the training data (`core.text`); `fmm` is forward maximum
matching over the vocabulary inside `tokenizers` (Rust, several times faster), whose token ids are
the row ids.
Words without a row are left out, as the consumers were trained.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, read_json, staged, write_json, write_text
from embedforge.core.segmenter import WordSegmenter
from embedforge.core.text import normalize_text, segment_text
from embedforge.nets.data import ProbeData, ids_to_probe_data, to_probe_data
from embedforge.nets.models import CNN_WIDTHS, PREDICT_BATCH, NetConfig
from embedforge.student.train import build_net, logits_of, word_table

log = logging.getLogger(__name__)
FORMAT = "embedforge-student/1"
CONFIG, VOCAB, WEIGHTS, ONNX = "config.json", "vocab.txt", "model.safetensors", "model.onnx"
TOKENIZER = "tokenizer.json"
SEGMENTERS = ("jieba", "fmm")
DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class StudentConfig:
    """What config.json holds: enough to rebuild the model and to say where it came from."""

    consumer: str
    labels: list[str]
    language: str
    vocab_size: int
    dim: int
    net: dict[str, Any]
    dtype: str = "float32"
    matrix: str = ""
    matrix_md5: str = ""
    # jieba: zh jieba with its bundled dictionary, HMM on; en: a regex word tokenizer (core.text)
    # fmm: forward maximum matching over the vocabulary in `tokenizers` (core.segmenter, tokenizer.json)
    segmenter: str = "jieba"
    format: str = FORMAT

    @classmethod
    def read(cls, path: Path) -> StudentConfig:
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EmbedforgeError(f'{path}: not an embedforge student (expected "format": "{FORMAT}")')
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - fields)
        missing = sorted(
            f for f in ("consumer", "labels", "language", "vocab_size", "dim", "net") if f not in data
        )
        if unknown or missing:
            raise EmbedforgeError(f"{path}: unknown keys {unknown} / missing keys {missing}")
        if data.get("segmenter", "jieba") not in SEGMENTERS:
            raise EmbedforgeError(
                f'{path}: "segmenter" is {data["segmenter"]!r}; expected one of {", ".join(SEGMENTERS)}'
            )
        return cls(**data)


class Classifier:
    """A student: `predict(texts)` -> label names, `predict_proba(texts)` -> [texts, labels] probabilities."""

    def __init__(
        self,
        model: nn.Module,
        words: Sequence[str],
        config: StudentConfig,
        segmenter: WordSegmenter | None = None,
    ) -> None:
        """`segmenter`: `config.segmenter: fmm` only (default: built over `words`)."""
        self.model = model.eval()
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.config = config
        self.labels = list(config.labels)
        self.segmenter = None
        if config.segmenter == "fmm":
            self.segmenter = segmenter or student_segmenter(self.words, config.language)

    # -- text -> rows ---------------------------------------------------------------------------------
    def segment(self, texts: Sequence[str]) -> list[list[str]]:
        """The words of each text, as the student's segmenter cuts them (punctuation included)."""
        if self.segmenter is not None:
            return self.segmenter.segment(texts)
        return [segment_text(normalize_text(t), self.config.language) for t in texts]

    def rows(self, texts: Sequence[str]) -> ProbeData:
        """The texts as padded row ids [texts, words] (padding = `vocab_size`): what `model.onnx` reads."""
        if self.segmenter is not None:  # token ids are row ids: no Python loop over the words
            return ids_to_probe_data(self.segmenter.ids(texts), [0] * len(texts), len(self.words))
        return to_probe_data(self.segment(texts), [0] * len(texts), self.index)

    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        return logits_of(self.model, self.rows(texts))

    def predict_proba(self, texts: Sequence[str] | str) -> np.ndarray:
        """Class probabilities [texts, labels], columns in the order of `labels`."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return torch.softmax(self.logits(texts), -1).numpy()

    def predict(self, texts: Sequence[str] | str) -> list[str]:
        """The most probable label name of each text."""
        return [self.labels[i] for i in self.predict_proba(texts).argmax(-1)]

    def coverage(self, texts: Sequence[str]) -> float:
        """The share of the texts' word tokens that have a row (the rest are left out)."""
        tokens = [w for words in self.segment(texts) for w in words]
        return sum(w in self.index for w in tokens) / max(len(tokens), 1)

    # -- files ----------------------------------------------------------------------------------------
    def save(self, folder: str | Path, onnx: bool = True) -> Path:
        """Write the folder atomically (replacing an older one as a whole)."""
        bad = next((w for w in self.words if "\n" in w or "\r" in w), None)
        if bad is not None:
            raise EmbedforgeError(f"student vocabulary: the word {bad!r} holds a line break")
        with atomic_path(folder, is_dir=True) as tmp:
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
            table = _table_key(self.model)
            state[table] = state[table].to(DTYPES[self.config.dtype])
            save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
            write_text(tmp / VOCAB, "".join(f"{w}\n" for w in self.words))
            write_json(tmp / CONFIG, asdict(self.config))
            if self.segmenter is not None:
                self.segmenter.save(tmp / TOKENIZER)
            if onnx:
                export_onnx(self.model, len(self.words), tmp / ONNX)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> Classifier:
        folder = staged(folder)  # the stage times the folder it has just written, before publishing it
        if not (folder / CONFIG).is_file():
            raise EmbedforgeError(f"{folder}: not a student folder (no {CONFIG})")
        config = StudentConfig.read(folder / CONFIG)
        words = (
            (folder / VOCAB).read_text(encoding="utf-8").split("\n")[:-1]
            if (folder / VOCAB).is_file()
            else []
        )
        if len(words) != config.vocab_size:
            raise EmbedforgeError(
                f"{folder / VOCAB}: {len(words)} words; expected {config.vocab_size} (config.json vocab_size)"
            )
        net = NetConfig(**config.net)
        model = build_net(
            config.consumer, torch.zeros(config.vocab_size, config.dim), len(config.labels), False, net, None
        )
        try:
            state = load_file(str(folder / WEIGHTS))
        except (OSError, SafetensorError) as err:
            raise EmbedforgeError(f"{folder / WEIGHTS}: not a readable safetensors file ({err})") from None
        state = {k: v.float() for k, v in state.items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
            raise EmbedforgeError(f"{folder / WEIGHTS}: does not match config.json ({first})") from None
        segmenter = None
        if config.segmenter == "fmm":
            segmenter = WordSegmenter.load(folder / TOKENIZER)
            if segmenter.tokenizer.token_to_id(words[-1] if words else "") != len(words) - 1:
                raise EmbedforgeError(f"{folder / TOKENIZER}: its ids do not match {VOCAB}")
        return cls(model, words, config, segmenter)


def student_segmenter(words: Sequence[str], language: str) -> WordSegmenter:
    """`segmenter: fmm`: forward maximum matching over the student's words; token id i is row i."""
    try:
        return WordSegmenter.build(list(words), language)
    except EmbedforgeError as err:
        raise EmbedforgeError(f"student segmenter (fmm): {err}") from err


def _table_key(model: nn.Module) -> str:
    table = word_table(model)
    return next(k for k, v in model.state_dict(keep_vars=True).items() if v is table)


class _Padded(nn.Module):
    """The consumer on padded row ids, in operations ONNX has: the mean model's EmbeddingBag becomes a
    gather and a masked mean (the same numbers: padding rows are zero and are not counted)."""

    def __init__(self, model: nn.Module, pad: int) -> None:
        super().__init__()
        self.model, self.pad = model, pad

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        bag = getattr(self.model, "bag", None)
        if bag is None:  # padding columns change no score, and keep every text >= the CNN's widest filter
            tail = torch.full((ids.shape[0], max(CNN_WIDTHS) - 1), self.pad, dtype=ids.dtype)
            return self.model(torch.cat([ids, tail], 1))
        known = (ids != self.pad).unsqueeze(-1).float()
        mean = (bag.weight[ids] * known).sum(1) / known.sum(1).clamp_min(1.0)
        return self.model.head(mean)  # type: ignore[operator]


def export_onnx(model: nn.Module, pad: int, path: Path) -> None:
    """`model.onnx`: padded row ids [texts, words] (int64, padding = vocabulary size) -> logits."""
    example = torch.full((2, 6), pad, dtype=torch.long)
    example[:, :3] = 0
    # the TorchScript exporter: the torch.export one needs onnxscript; this one maps the BiLSTM's packed
    # sequences to ONNX's LSTM with per-text lengths (measured: the same logits within 1e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            _Padded(model.eval(), pad),
            (example,),
            str(path),
            input_names=["ids"],
            output_names=["logits"],
            dynamic_axes={"ids": {0: "texts", 1: "words"}, "logits": {0: "texts"}},
            dynamo=False,
        )


def load_classifier(folder: str | Path) -> Classifier:
    """Load a student saved by the `student` stage (models/student/): `predict(texts)` takes raw text."""
    return Classifier.load(folder)


__all__ = ["PREDICT_BATCH", "Classifier", "StudentConfig", "load_classifier"]
