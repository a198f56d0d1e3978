"""Post-processing a matrix with a lexicon's constraints: retrofitting and counter-fitting.

- `retrofit` (Faruqui et al. 2015): each constrained word moves towards the mean of its synonyms while
  staying near its own vector, q_i <- (alpha q^_i + mean_j q_j) / (alpha + 1), `iterations` Jacobi sweeps
  (every row updated from the previous sweep, so the order of words does not matter). Antonyms are not
  used. Words without a synonym keep their rows.
- `counterfit` (Mrkšić et al. 2016): on unit vectors, minimise
  attract * SA + repel * AR + preserve * VSP, with SA = mean relu(d(u, w) - syn_margin) over synonyms,
  AR = mean relu(ant_margin - d(u, w)) over antonyms and VSP = mean relu(d'(i, j) - d(i, j)) over the
  pairs whose original cosine distance d(i, j) is below `rho` (the vector-space preservation term), d the
  cosine distance 1 - cos; full-batch Adam for `iterations` steps. Each row keeps its original length.
Both are plain tensor arithmetic without randomness: the same input gives the same matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from embedforge.core.lexicon import Constraints
from embedforge.core.params import ExtractParams

NEIGHBOUR_CHUNK = 1024  # rows per block when looking for the preserved neighbour pairs
MAX_NEIGHBOURS = 50  # at most this many preserved neighbours per word (the closest ones)


def _pairs(pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    return torch.tensor(list(pairs), dtype=torch.long).reshape(-1, 2)


def retrofit(
    weight: torch.Tensor, synonyms: Sequence[tuple[int, int]], iterations: int = 10, alpha: float = 1.0
) -> torch.Tensor:
    """Faruqui et al.'s retrofitting with beta_ij = 1 / degree(i) (see the module docstring)."""
    pairs = _pairs(synonyms)
    if not len(pairs) or iterations == 0:
        return weight
    original = weight.to(torch.float64)
    n = original.shape[0]
    both = torch.cat([pairs, pairs.flip(1)])  # each pair in both directions
    degree = torch.bincount(both[:, 0], minlength=n).to(torch.float64)
    values = 1.0 / degree[both[:, 0]]
    has = (degree > 0).unsqueeze(1)
    out = original
    for _ in range(iterations):
        mean = torch.zeros_like(original).index_add_(0, both[:, 0], out[both[:, 1]] * values[:, None])
        moved = (alpha * original + mean) / (alpha + 1.0)
        out = torch.where(has, moved, original)
    return out.to(weight.dtype)


def neighbour_pairs(unit: torch.Tensor, rho: float, limit: int = MAX_NEIGHBOURS) -> torch.Tensor:
    """[k, 2] pairs (i, j), i != j, whose cosine distance is below `rho`, at most `limit` per row."""
    found = []
    n = unit.shape[0]
    k = min(limit + 1, n)
    for start in range(0, n, NEIGHBOUR_CHUNK):
        block = unit[start : start + NEIGHBOUR_CHUNK]
        top = torch.topk(block @ unit.T, k, dim=1)
        rows = torch.arange(start, start + len(block)).unsqueeze(1).expand_as(top.indices)
        keep = (1.0 - top.values < rho) & (top.indices != rows)
        found.append(torch.stack([rows[keep], top.indices[keep]], dim=1))
    return torch.cat(found) if found else torch.empty(0, 2, dtype=torch.long)


def _distance(unit: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    return 1.0 - (unit[pairs[:, 0]] * unit[pairs[:, 1]]).sum(1)


def counterfit(
    weight: torch.Tensor,
    synonyms: Sequence[tuple[int, int]],
    antonyms: Sequence[tuple[int, int]] = (),
    *,
    iterations: int = 20,
    lr: float = 0.01,
    attract: float = 1.0,
    repel: float = 1.0,
    preserve: float = 1.0,
    syn_margin: float = 0.0,
    ant_margin: float = 1.0,
    rho: float = 0.2,
) -> torch.Tensor:
    """Mrkšić et al.'s counter-fitting (see the module docstring)."""
    syn, ant = _pairs(synonyms), _pairs(antonyms)
    if (not len(syn) and not len(ant)) or iterations == 0:
        return weight
    original = weight.to(torch.float32)
    norms = original.norm(dim=1, keepdim=True)
    start = torch.nn.functional.normalize(original, dim=1)
    keep = neighbour_pairs(start, rho)
    kept_distance = _distance(start, keep)
    vectors = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([vectors], lr=lr)
    for _ in range(iterations):
        optimiser.zero_grad()
        unit = torch.nn.functional.normalize(vectors, dim=1)
        loss = unit.new_zeros(())
        if len(syn):
            loss = loss + attract * torch.relu(_distance(unit, syn) - syn_margin).mean()
        if len(ant):
            loss = loss + repel * torch.relu(ant_margin - _distance(unit, ant)).mean()
        if len(keep):
            loss = loss + preserve * torch.relu(_distance(unit, keep) - kept_distance).mean()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        out = torch.nn.functional.normalize(vectors, dim=1) * norms
    return out.to(weight.dtype)


def lexicon_step(cfg: ExtractParams, constraints: Constraints) -> Callable[[torch.Tensor], torch.Tensor]:
    """The post-processing `extract.lexicon_method` and its settings ask for, on these constraints."""
    if cfg.lexicon_method == "retrofit":
        return lambda w: retrofit(w, constraints.synonyms, cfg.lexicon_iterations, cfg.lexicon_alpha)
    return lambda w: counterfit(
        w,
        constraints.synonyms,
        constraints.antonyms,
        iterations=cfg.lexicon_iterations,
        lr=cfg.lexicon_lr,
        preserve=cfg.lexicon_preserve,
        syn_margin=cfg.lexicon_syn_margin,
        ant_margin=cfg.lexicon_ant_margin,
        rho=cfg.lexicon_rho,
    )
