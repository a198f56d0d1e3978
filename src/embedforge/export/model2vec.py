"""A matrix as a model2vec static model folder: a fast sentence encoder (the mean of its words' vectors).

The files `model2vec.StaticModel.from_pretrained` (0.10) loads, as its own `save_pretrained` writes them:
  model.safetensors  tensor `embeddings` [V + 1, d] float32: the matrix's rows, then a zero row for [UNK]
  tokenizer.json     a `tokenizers` WordLevel model over the matrix's words + [UNK]; text is NFKC-normalised
                     (and lower-cased when the vocabulary is, as prepare's is), then split on whitespace,
                     so Chinese text must be segmented first (e.g. `" ".join(jieba.cut(text))`)
  config.json        model2vec's metadata (model_type, hidden_dim, normalize, embedding_dtype, ...)
  modules.json       sentence-transformers' module list, as model2vec writes it
Unknown words are dropped by model2vec before pooling.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, write_text

UNK = "[UNK]"


def word_tokenizer(words: list[str]) -> Tokenizer:
    """A WordLevel tokenizer whose ids are the rows of `words`, then [UNK]."""
    if UNK in words:
        raise EmbedforgeError(f"model2vec export: the vocabulary already has a word {UNK!r}")
    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate([*words, UNK])}, unk_token=UNK))
    steps: list[normalizers.Normalizer] = [normalizers.NFKC()]
    if all(w == w.lower() for w in words):
        steps.append(normalizers.Lowercase())
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def _json(obj: object) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_model2vec(wv: WordVectors, folder: str | Path, normalize: bool = True) -> Path:
    """Write `wv` as a model2vec folder (each file atomically); `normalize`: unit-length sentence vectors."""
    folder = Path(folder)
    weight = torch.cat([wv.weight, torch.zeros(1, wv.dim)])
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({"embeddings": weight.contiguous()}, str(tmp))
    write_text(folder / "tokenizer.json", word_tokenizer(wv.words).to_str(pretty=False))
    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": None,
        "apply_pca": None,
        "sif_coefficient": None,
        "hidden_dim": wv.dim,
        "seq_length": 1000000,  # no sequence-length limit: a bag of words
        "normalize": normalize,
        "embedding_dtype": "float32",
    }
    write_text(folder / "config.json", _json(config))
    modules = [{"idx": 0, "name": "0", "path": ".", "type": "sentence_transformers.models.StaticEmbedding"}]
    if normalize:
        modules.append(
            {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    write_text(folder / "modules.json", _json(modules))
    return folder
