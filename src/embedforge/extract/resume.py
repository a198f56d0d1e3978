"""Checkpoints of the `aggregate` corpus pass, so a killed multi-hour pass resumes instead of restarting.

Layout: `<root>/<key>/window-<n>/` holds `state.safetensors` (sums [G, V, d], counts [V], taken [V]) and
`COMPLETE`, written last (as `finetune.checkpoints` marks its checkpoints); the folder is written under a
temporary name and renamed, so a kill at any moment leaves the previous checkpoint intact. The key hashes
everything the sums depend on (`AggregateSettings`, model files, corpus files, words) and nothing else, so a
changed input never resumes a stale pass, while a setting the sums do not read (the device, how often to
checkpoint, post-processing, other strategies) never restarts one; other keys' folders are removed when a
pass starts. A checkpoint holds the whole
run's sums (ranks add theirs into rank 0's), so a run may resume with another number of processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from embedforge.core.encoder import Encoder, Groups, layer_groups
from embedforge.core.files import atomic_path, path_fingerprint
from embedforge.core.params import ExtractParams
from embedforge.extract.batching import Accumulator
from embedforge.extract.shard import Shard

log = logging.getLogger(__name__)
COMPLETE = "COMPLETE"
STATE = "state.safetensors"
PREFIX = "window-"


@dataclass(frozen=True)
class PassState:
    """What a checkpoint restores: the sums after `windows` corpus windows, and each word's contexts."""

    windows: int
    sums: torch.Tensor
    counts: torch.Tensor
    taken: torch.Tensor


@dataclass(frozen=True)
class AggregateSettings:
    """What an aggregate pass's sums depend on besides the model, the corpus files and the words."""

    groups: tuple[tuple[int, ...], ...]  # extract.layers resolved against the model's depth
    pooling: str
    max_contexts: int
    token_budget: int  # batching changes the order of the float sums
    corpus_window: int  # a checkpoint counts windows
    corpus_field: str  # which text of a JSON Lines or Parquet corpus is read
    language: str  # how extract.corpus is segmented
    precision: str  # of the forward passes, resolved (`auto` is bf16 on some GPUs, fp32 elsewhere)

    @classmethod
    def of(cls, cfg: ExtractParams, encoder: Encoder, language: str) -> AggregateSettings:
        """The settings of a pass of `encoder` under `cfg`."""
        groups: Groups = layer_groups(cfg.layers, encoder.depth, str(encoder.dir))
        return cls(
            groups=tuple(tuple(g) for g in groups),
            pooling=cfg.pooling,
            max_contexts=cfg.max_contexts,
            token_budget=cfg.token_budget,
            corpus_window=cfg.corpus_window,
            corpus_field=cfg.corpus_field,
            language=language,
            precision=encoder.precision,
        )


def pass_key(
    settings: AggregateSettings, source: str, model_dir: Path, corpus: Sequence[Path], words: Sequence[str]
) -> str:
    """Short hash of everything an aggregate pass's sums depend on."""
    h = hashlib.sha256(json.dumps([dataclasses.asdict(settings), source], sort_keys=True).encode())
    cache: dict = {}
    for path in [model_dir, *corpus]:
        h.update(json.dumps(path_fingerprint(path, cache), sort_keys=True).encode())
    h.update("\n".join(words).encode())
    return h.hexdigest()[:16]


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a pass, oldest first."""
    found = [p for p in run_dir.glob(f"{PREFIX}*") if (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def load_state(run_dir: Path) -> PassState | None:
    """The newest complete checkpoint of a pass, if any."""
    done = checkpoints(run_dir) if run_dir.is_dir() else []
    if not done:
        return None
    t = load_file(done[-1] / STATE)
    return PassState(int(done[-1].name[len(PREFIX) :]), t["sums"], t["counts"], t["taken"])


def save_state(run_dir: Path, acc: Accumulator, taken: list[int], windows: int, shard: Shard) -> None:
    """Checkpoint after `windows` windows: the ranks' sums are added into rank 0's, which writes them."""
    if shard.world > 1:
        shard.sum_(acc.sums, acc.counts)
        if not shard.main:
            acc.sums.zero_()
            acc.counts.zero_()
            return
    target = run_dir / f"{PREFIX}{windows}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, is_dir=True, now=True) as tmp:  # a checkpoint must outlive a kill
        tensors = {"sums": acc.sums, "counts": acc.counts, "taken": torch.as_tensor(taken, dtype=torch.long)}
        save_file(tensors, str(tmp / STATE))
        (tmp / COMPLETE).write_text(f"{windows}\n", encoding="utf-8")
    for old in checkpoints(run_dir)[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    log.info("checkpoint: %d corpus windows -> %s", windows, target)


def start_pass(root: Path, key: str, shard: Shard) -> Path:
    """The checkpoint folder of this pass; rank 0 removes the folders of other (stale) passes."""
    if shard.main and root.is_dir():
        for stale in root.iterdir():
            if stale.is_dir() and stale.name != key:
                shutil.rmtree(stale, ignore_errors=True)
    return root / key


def finish_pass(run_dir: Path, shard: Shard) -> None:
    """A finished pass needs no checkpoint: rank 0 removes its folder."""
    if shard.main:
        shutil.rmtree(run_dir, ignore_errors=True)
