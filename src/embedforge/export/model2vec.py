"""A matrix as a model2vec static model folder: a fast sentence encoder (the mean of its words' vectors).

The files `model2vec.StaticModel.from_pretrained` (0.10) loads, as its own `save_pretrained` writes them:
  model.safetensors  tensor `embeddings` [T, d] (float32, or float16 / int8 as `storage` asks): the matrix's
                     rows, then zero rows for the tokenizer's other entries (the CJK characters added for
                     matching, then [UNK]); int8 is the matrix over one scale (cosines unchanged)
  tokenizer.json     embedforge's word segmenter over the matrix's words (core/segmenter.py): NFKC, lower
                     case when the words are, then forward maximum matching inside `tokenizers`, so raw
                     Chinese works as it is ("这家外卖很好吃" -> 这家 / 外卖 / 很 / 好吃), pre-segmented too
  config.json        model2vec's metadata (model_type, hidden_dim, normalize, embedding_dtype, ...)
  modules.json       sentence-transformers' module list, as model2vec writes it
What a text's vector is: model2vec drops [UNK] (punctuation, characters and words outside the matrix) and
averages the rest. A character added for matching that the matrix has no row for counts with a zero row:
that shortens the mean, not its direction, so the default unit-length vectors are unchanged. A text with no
known token encodes to the zero vector: `unknown_texts` lists those texts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, write_text
from embedforge.core.segmenter import WordSegmenter
from embedforge.export.compress import Storage, quantize


def word_segmenter(words: list[str], language: str, where: str = "model2vec export") -> WordSegmenter:
    """The export's tokenizer: the segmenter over `words`, whose ids 0..len(words)-1 are their rows."""
    try:
        return WordSegmenter.build(words, language)
    except EmbedforgeError as err:
        raise EmbedforgeError(f"{where}: {err}") from err


def unknown_texts(folder: str | Path, texts: Sequence[str]) -> list[str]:
    """The texts an exported folder encodes to the zero vector: none of their tokens has a row."""
    segmenter = WordSegmenter.load(Path(folder) / "tokenizer.json")
    rows = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["embedforge_words"]
    return [
        t for t, enc in zip(texts, segmenter.encode(texts), strict=True) if not any(i < rows for i in enc.ids)
    ]


def _json(obj: object) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_model2vec(
    wv: WordVectors,
    folder: str | Path,
    normalize: bool = True,
    language: str = "zh",
    storage: Storage = "float32",
) -> Path:
    """Write `wv` as a model2vec folder (each file atomically); `normalize`: unit-length sentence vectors.

    `language` chooses the segmenter's rules (zh: forward maximum matching; en: whole words); `storage`
    the matrix's dtype (model2vec's `quantize_to`).
    """
    folder = Path(folder)
    segmenter = word_segmenter(wv.words, language, f"model2vec export of {folder.name}")
    extra = segmenter.tokenizer.get_vocab_size() - len(wv.words)  # matching characters and [UNK]
    weight, _ = quantize(torch.cat([wv.weight, torch.zeros(extra, wv.dim)]), storage)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({"embeddings": weight.contiguous()}, str(tmp))
    segmenter.save(folder / "tokenizer.json")
    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": None,
        "apply_pca": None,
        "sif_coefficient": None,
        "hidden_dim": wv.dim,
        "seq_length": 1000000,  # no sequence-length limit: a bag of words
        "normalize": normalize,
        "embedding_dtype": storage,
        "embedforge_words": len(wv.words),  # ids below this have a row of the matrix; unknown_texts reads it
        "embedforge_language": language,
    }
    write_text(folder / "config.json", _json(config))
    modules = [{"idx": 0, "name": "0", "path": ".", "type": "sentence_transformers.models.StaticEmbedding"}]
    if normalize:
        modules.append(
            {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    write_text(folder / "modules.json", _json(modules))
    return folder
