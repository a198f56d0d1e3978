"""Smaller matrices for small machines: PCA to fewer dimensions, float16 or int8 storage.

The same two knobs as model2vec's `pca_dims` and `quantize_to`, with the same meaning: PCA is fitted on
the matrix itself (rows centred, then projected on the top principal directions); int8 stores
round(w / s) with one scale s = max |w| / 127 for the whole matrix, float16 a plain cast.
"""

from __future__ import annotations

import logging
from typing import Literal, get_args

import torch

from embedforge.core.embedding import WordVectors

log = logging.getLogger(__name__)

Storage = Literal["float32", "float16", "int8"]
STORAGES: tuple[str, ...] = get_args(Storage)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "int8": torch.int8}
INT8_MAX = 127  # symmetric: -127..127, as model2vec's quantize_embeddings


def pca(wv: WordVectors, dims: int | None) -> WordVectors:
    """`wv` reduced to its top `dims` principal components (None, or no fewer than it has: unchanged)."""
    if dims is None or dims >= wv.dim:
        if dims is not None:
            log.warning("pca_dims = %d is not below the matrix's %d dimensions: kept as it is", dims, wv.dim)
        return wv
    centred = wv.weight.to(torch.float64)
    centred = centred - centred.mean(0, keepdim=True)
    # full SVD of a [V, d] matrix with d in the hundreds: exact and deterministic, unlike a randomised one
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    basis = vh[:dims].T
    # an SVD's signs are arbitrary: fix each direction so its largest coordinate is positive
    signs = torch.sign(basis[basis.abs().argmax(0), torch.arange(dims)])
    return WordVectors(list(wv.words), (centred @ (basis * signs)).to(torch.float32), wv.info)


def quantize(weight: torch.Tensor, storage: Storage) -> tuple[torch.Tensor, float]:
    """`weight` stored as `storage`, and the scale that multiplies it back (1.0 unless int8)."""
    if storage == "int8":
        top = float(weight.abs().max())
        scale = top / INT8_MAX if top > 0 else 1.0
        return torch.round(weight / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8), scale
    return weight.to(DTYPES[storage]), 1.0


def dequantize(stored: torch.Tensor, scale: float) -> torch.Tensor:
    """The float32 matrix a stored one stands for."""
    return stored.to(torch.float32) * scale


def compressed(wv: WordVectors, dims: int | None, storage: Storage) -> WordVectors:
    """`wv` after PCA and a round trip through `storage`: the vectors a compressed export gives."""
    reduced = pca(wv, dims)
    return WordVectors(list(reduced.words), dequantize(*quantize(reduced.weight, storage)), reduced.info)
