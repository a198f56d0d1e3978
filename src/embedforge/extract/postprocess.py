"""Optional post-processing of a matrix: centering, all-but-the-top (Mu & Viswanath 2018), a lexicon's
constraints (`extract.lexicon`, see `extract.retrofit`), L2 norm."""

from __future__ import annotations

from collections.abc import Callable

import torch

from embedforge.core.errors import EmbedforgeError

Constrain = Callable[[torch.Tensor], torch.Tensor]  # a lexicon's post-processing of one matrix


def describe(center: bool, remove_top_pcs: int, normalize: bool, lexicon: str | None = None) -> str:
    """The steps as recorded in index.json, e.g. `center+top2+l2`, `center+retrofit`, or `none`."""
    steps = (["center"] if center or remove_top_pcs else []) + (
        [f"top{remove_top_pcs}"] if remove_top_pcs else []
    )
    return "+".join(steps + ([lexicon] if lexicon else []) + (["l2"] if normalize else [])) or "none"


def postprocess(
    weight: torch.Tensor,
    center: bool,
    remove_top_pcs: int,
    normalize: bool,
    constrain: Constrain | None = None,
) -> torch.Tensor:
    """Center (implied by removing PCs), project out the top principal components, apply `constrain` (a
    lexicon's post-processing), then L2-normalise."""
    if not (center or remove_top_pcs or normalize or constrain):
        return weight  # nothing to do (a float64 round trip would give the same values)
    out = weight.to(torch.float64)
    if center or remove_top_pcs:
        out = out - out.mean(0, keepdim=True)
    if remove_top_pcs:
        if remove_top_pcs >= min(out.shape):
            raise EmbedforgeError(
                f"extract.remove_top_pcs = {remove_top_pcs}; expected fewer than "
                f"min(words, dim) = {min(out.shape)}"
            )
        # float64 SVD: deterministic and stable; the PCs are the top right singular vectors
        pcs = torch.linalg.svd(out, full_matrices=False).Vh[:remove_top_pcs]
        out = out - (out @ pcs.T) @ pcs
    if constrain is not None:
        out = constrain(out.to(torch.float32)).to(torch.float64)
    if normalize:
        out = torch.nn.functional.normalize(out, dim=1)
    return out.to(torch.float32)
