"""What a model strategy reads (`SourcePass`: one encoder's share of a run) and returns (`Matrix`).

The one piece of work strategies share is the decontext pass (every word encoded alone, optionally
inside `extract.template`), cached per `AloneSettings`: `decontext` reads the pass of the run's settings
and `aggregate` falls back on its rows; `cls` reads the bare word's pass (the tutorial baseline), the
same pass when no template is set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from embedforge.core.catalog import Layer, MatrixRecord, layer_label, matrix_name
from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import AloneSettings, Encoder, Groups, layer_groups
from embedforge.core.params import ExtractParams
from embedforge.extract.batching import Accumulator, token_batches
from embedforge.extract.shard import ONE_PROCESS, Shard

# windows of segmented sentences, as `PreparedData.sentences()` yields them
Corpus = Iterable[Sequence[Sequence[str]]]
WORD_ALONE = AloneSettings()  # `[CLS] word [SEP]`, the word's pieces pooled


@dataclass
class Matrix:
    """One extracted matrix and what its index.json record says about it."""

    name: str
    strategy: str
    source: str | None
    layer: Layer
    wv: WordVectors
    pooling: str | None = None  # how a word's pieces were pooled, for the strategies that pool
    postprocess: str = "none"

    def record(self) -> MatrixRecord:
        """The index.json record of this matrix."""
        return MatrixRecord(
            name=self.name,
            strategy=self.strategy,
            source=self.source,
            layer=self.layer,
            pooling=self.pooling,
            postprocess=self.postprocess,
            words=len(self.wv),
            dim=self.wv.dim,
        )


@dataclass(frozen=True)
class DecontextRows:
    """Words encoded alone: pooled pieces [G, n, d] per layer group, the last layer's [CLS] [n, d], and
    [n] flags for the words that have pieces at all (a word without pieces keeps zero rows)."""

    pooled: torch.Tensor
    cls: torch.Tensor
    found: torch.Tensor


def encode_alone(
    encoder: Encoder,
    words: Sequence[str],
    groups: Groups,
    pooling: str,
    token_budget: int,
    settings: AloneSettings = WORD_ALONE,
    shard: Shard = ONE_PROCESS,
    progress: str | None = None,
) -> DecontextRows:
    """Encode every word alone (`[CLS] word [SEP]`, or inside the template) in token-budget batches;
    pool the word's pieces (or every position) at each group, and take [CLS] at the last layer.
    Under torchrun each rank encodes its share of the words; the sums are all-reduced. `progress`:
    the description of a progress bar over this rank's words (words/s, ETA; rank 0's bar only); None: no bar.

    Memory: one batch of activations plus the result, [G, n, d] pooled and [n, d] [CLS] (fp32)."""
    n = len(words)
    encoded = encoder.encode([settings.sentence(w) for w in words])
    items = [(ids, (row, settings.pooled(ids, spans))) for row, (ids, spans) in enumerate(encoded)]
    items = shard.take([it for it in items if it[1][1] is not None])  # no pieces: zero rows
    pooled = Accumulator(n, len(groups), encoder.dim)
    cls = Accumulator(n, 1, encoder.dim)
    g = len(groups)
    bar = tqdm(total=len(items), unit="word", desc=progress, disable=progress is None or not shard.main)
    for batch in token_batches(items, token_budget):
        # per item two spans: the pooled positions (even rows of the result), [CLS] (odd rows)
        spans = [span for i, (_, (_, (s, e))) in enumerate(batch) for span in ((i, s, e), (i, 0, 1))]
        rows = [row for _, (row, _) in batch]
        out = encoder.pool_batch([ids for ids, _ in batch], spans, [*groups, (encoder.depth,)], pooling)
        pooled.add(rows, out[:g, 0::2])
        cls.add(rows, out[g:, 1::2])
        bar.update(len(batch))
    bar.close()
    shard.sum_(pooled.sums, pooled.counts, cls.sums, cls.counts)
    return DecontextRows(pooled.means_(), cls.means_()[0], pooled.counts > 0)


@dataclass
class SourcePass:
    """One encoder's share of an extraction: the words, the settings, and the work its strategies share."""

    encoder: Encoder
    words: list[str]
    cfg: ExtractParams
    counts: Sequence[int] = ()  # corpus counts per word (empty: all 0)
    source: str = "model"  # the `source` part of matrix names (`decontext_<source>_L4`)
    corpus: Corpus | None = None  # for `aggregate`; read once
    corpus_rows: int | None = None  # sentences in `corpus`, for the progress bar
    progress: bool = True
    # True when the decontext pass runs for this source anyway (decontext, or cls without a template, is
    # extracted too): aggregate then slices its fallback rows from it instead of encoding those words again
    reuse_decontext: bool = True
    shard: Shard = ONE_PROCESS  # this process's share of a torchrun run (extract.shard)
    checkpoint: Path | None = None  # aggregate: where to checkpoint the corpus pass (None: no checkpoints)
    settings: AloneSettings = field(init=False)  # `cfg.template` and `cfg.positions`
    _passes: dict[AloneSettings, DecontextRows] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = list(self.counts) or [0] * len(self.words)
        self.settings = AloneSettings(self.cfg.template, self.cfg.positions)

    @cached_property
    def groups(self) -> Groups:
        """`cfg.layers` resolved against this encoder's depth (only the forward-pass strategies read it)."""
        return layer_groups(self.cfg.layers, self.encoder.depth, str(self.encoder.dir))

    def alone(self, settings: AloneSettings) -> DecontextRows:
        """Every word encoded alone with `settings`, pooled at each layer group; [CLS] at the last layer.
        One pass per distinct settings, cached."""
        if settings not in self._passes:
            self._passes[settings] = self._encode_alone(self.words, settings)
        return self._passes[settings]

    @cached_property
    def decontext(self) -> DecontextRows:
        """The pass of the run's settings (`extract.template`, `extract.positions`); with
        `extract.extra_templates`, its pooled rows averaged with those of each extra template."""
        return self._ensemble(self.words, self.alone(self.settings))

    def _ensemble(self, words: list[str], first: DecontextRows) -> DecontextRows:
        """`first` (the words in `extract.template`) averaged with the words in each extra template;
        [CLS] and `found` are the first template's. Memory: one extra pass at a time."""
        if not self.cfg.extra_templates:
            return first
        pooled = first.pooled.clone()
        for template in self.cfg.extra_templates:
            pooled += self._encode_alone(words, replace(self.settings, template=template)).pooled
        pooled /= 1 + len(self.cfg.extra_templates)
        return DecontextRows(pooled, first.cls, first.found)

    @property
    def bare(self) -> DecontextRows:
        """The pass of the word by itself, for `cls`; the decontext pass itself when no template is set
        (its [CLS] does not depend on the pooled positions)."""
        return self.alone(replace(self.settings, template=None))

    def decontext_of(self, rows: list[int]) -> DecontextRows:
        """`decontext` for some words: sliced from the whole pass when it is shared, else encoded now."""
        if self.reuse_decontext:
            whole = self.decontext
            return DecontextRows(whole.pooled[:, rows], whole.cls[rows], whole.found[rows])
        words = [self.words[i] for i in rows]
        return self._ensemble(words, self._encode_alone(words, self.settings))

    def _encode_alone(self, words: list[str], settings: AloneSettings) -> DecontextRows:
        where = "alone" if settings.template is None else "in a template"
        templates = [self.cfg.template, *self.cfg.extra_templates]
        if len(templates) > 1 and settings.template in templates:  # which pass of the ensemble
            where = f"in template {templates.index(settings.template) + 1}/{len(templates)}"
        return encode_alone(
            self.encoder,
            words,
            self.groups,
            self.cfg.pooling,
            self.cfg.token_budget,
            settings,
            self.shard,
            f"{self.source}: words {where}" if self.progress else None,
        )

    def per_group(self, strategy: str, stacked: torch.Tensor, info: pd.DataFrame) -> list[Matrix]:
        """One Matrix per layer group from stacked vectors [G, V, d]."""
        return [
            Matrix(
                name=matrix_name(strategy, self.source, g),
                strategy=strategy,
                source=self.source,
                layer=layer_label(g),
                wv=WordVectors(self.words, stacked[i], info),
                pooling=self.cfg.pooling,
            )
            for i, g in enumerate(self.groups)
        ]

    def info(self, method: list[str], contexts: Sequence[int] | torch.Tensor | None = None) -> pd.DataFrame:
        """The per-word columns of a vocab file (see `word_info`)."""
        return word_info(self.counts, method, contexts)


def word_info(
    counts: Sequence[int], method: list[str], contexts: Sequence[int] | torch.Tensor | None = None
) -> pd.DataFrame:
    """The per-word columns of a vocab file: count, method (how the row was made), contexts (0 if none)."""
    return pd.DataFrame(
        {
            "count": pd.array(list(counts), dtype="int64"),
            "method": method,
            "contexts": pd.array(
                [int(c) for c in contexts] if contexts is not None else [0] * len(method), dtype="int64"
            ),
        }
    )
