"""Smaller exports: PCA to fewer dimensions and float16 / int8 storage, as model2vec offers them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embedforge.core.catalog import Catalog, MatrixRecord
from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import ExportParams, parse_params
from embedforge.export import run_export, write_model2vec
from embedforge.export.compress import compressed, dequantize, pca, quantize

WORDS = [f"词{i}" for i in range(40)]


def _wv(dim: int = 16, rank: int = 4, seed: int = 0) -> WordVectors:
    """Rows near a `rank`-dimensional subspace, plus a little noise and an offset."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(len(WORDS), rank, generator=g) @ torch.randn(rank, dim, generator=g)
    return WordVectors(WORDS, low + 0.01 * torch.randn(len(WORDS), dim, generator=g) + 3.0)


def _cosines(weight: torch.Tensor) -> torch.Tensor:
    unit = torch.nn.functional.normalize(weight - weight.mean(0), dim=1)
    return unit @ unit.T


def test_pca_keeps_the_top_directions_and_the_cosines_of_a_low_rank_matrix() -> None:
    wv = _wv()
    reduced = pca(wv, 4)
    assert reduced.words == wv.words and reduced.weight.shape == (40, 4)
    torch.testing.assert_close(_cosines(reduced.weight), _cosines(wv.weight), atol=2e-3, rtol=0)
    variances = reduced.weight.var(0)
    assert torch.all(variances[:-1] >= variances[1:])  # in order of explained variance


def test_pca_is_deterministic_and_none_or_too_many_dims_keep_the_matrix(caplog) -> None:
    wv = _wv()
    assert torch.equal(pca(wv, 3).weight, pca(_wv(), 3).weight)
    assert pca(wv, None) is wv
    assert pca(wv, 16) is wv and pca(wv, 99) is wv
    assert "not below the matrix's 16 dimensions" in caplog.text


def test_int8_stores_one_scale_and_round_trips_within_half_a_step() -> None:
    weight = _wv().weight
    stored, scale = quantize(weight, "int8")
    assert stored.dtype == torch.int8 and int(stored.abs().max()) == 127
    assert scale == pytest.approx(float(weight.abs().max()) / 127)
    assert float((dequantize(stored, scale) - weight).abs().max()) <= scale / 2 + 1e-6
    half, one = quantize(weight, "float16")
    assert half.dtype == torch.float16 and one == 1.0
    assert quantize(torch.zeros(2, 3), "int8")[1] == 1.0  # an all-zero matrix needs no scale


def test_compressed_is_the_round_trip_an_export_gives() -> None:
    wv = _wv()
    out = compressed(wv, 4, "int8")
    stored, scale = quantize(pca(wv, 4).weight, "int8")
    torch.testing.assert_close(out.weight, dequantize(stored, scale))


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_a_quantized_model2vec_folder_loads_and_keeps_the_sentence_vectors(tmp_path: Path, storage) -> None:
    model2vec = pytest.importorskip("model2vec")
    wv = _wv()
    full = model2vec.StaticModel.from_pretrained(write_model2vec(wv, tmp_path / "f32"))
    small = write_model2vec(wv, tmp_path / storage, storage=storage)
    assert load_file(str(small / "model.safetensors"))["embeddings"].dtype == getattr(torch, storage)
    model = model2vec.StaticModel.from_pretrained(small)
    texts = ["词1词2", "词3", "词10词20词30"]
    np.testing.assert_allclose(model.encode(texts), full.encode(texts), atol=2e-2)


def test_the_export_stage_reduces_and_quantizes_what_it_writes(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "embeddings")
    _wv().save(catalog.path("decontext_base_L1"))
    catalog.write_index(
        [MatrixRecord("decontext_base_L1", "decontext", "base", 1, "mean", "none", 40, 16)], 40
    )
    params = ExportParams(word2vec=["*"], model2vec=["*"], pca_dims=4, quantize_to="int8")
    out = tmp_path / "exports"
    run_export(params, catalog, out)
    assert WordVectors.load_word2vec(out / "word2vec/decontext_base_L1.txt").dim == 4
    tensor = load_file(str(out / "model2vec/decontext_base_L1/model.safetensors"))["embeddings"]
    assert tensor.dtype == torch.int8 and tensor.shape[1] == 4
    assert "PCA to 4 dimensions; model2vec matrices stored as int8" in (out / "README.md").read_text()


def test_bad_compression_params_are_one_line() -> None:
    with pytest.raises(EmbedforgeError, match="export.pca_dims"):
        parse_params({"export": {"pca_dims": 0}})
    with pytest.raises(EmbedforgeError, match="export.quantize_to"):
        parse_params({"export": {"quantize_to": "int4"}})
