"""The joint lexical loss of `finetune` (`finetune.lexical_weight` > 0): Mirror-BERT beside the task loss.

Mirror-BERT (Liu et al. 2021) makes an encoder lexical by "identity" tuning: a word encoded twice with
dropout on gives two views that must be closer to each other than to the other words of the batch
(symmetric InfoNCE, in-batch negatives). Here it runs on every training step next to the classification
loss, `loss = task + lexical_weight * infonce`, so the fine-tuned encoder keeps its task skill.

The words are pooled exactly as `extract` builds the decontext matrices (`extract.template`, `positions`,
`layers`, `pooling`, through `core.encoder.AloneSettings` and `pool_spans`), so what is trained is the
recommended matrix's own vector. They are the most frequent multi-character words of jieba's bundled
dictionary, minus every word of the run's benchmark files (the sets the matrices are scored on), in an
order fixed by the seed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from embedforge.core.benchmarks import benchmark_words
from embedforge.core.encoder import AloneSettings, Span, encode_words, layer_groups, pad_batch, pool_spans
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import FinetuneParams, Params, lexical_exclude_files

LANGUAGE = "zh"  # the language of jieba's dictionary, the one word source


def dictionary_words(n: int, exclude: set[str], seed: int) -> list[str]:
    """The n most frequent multi-character Chinese words of jieba's bundled dictionary (dict.txt), minus
    `exclude`, shuffled with `seed`. Frequency ties break by the word, so the list is fixed by (n, seed)."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or spec.origin is None:
        raise EmbedforgeError(
            "finetune.lexical_weight > 0 needs the jieba package (its dictionary is the word list)"
        )
    rows = []
    with (Path(spec.origin).parent / "dict.txt").open(encoding="utf-8") as fh:
        for line in fh:
            word, freq, *_ = line.split()
            if len(word) >= 2 and word not in exclude and all("\u4e00" <= c <= "\u9fff" for c in word):
                rows.append((int(freq), word))
    rows.sort(reverse=True)
    words = [w for _, w in rows[:n]]
    random.Random(seed).shuffle(words)
    return words


def excluded_words(files: Iterable[str | Path]) -> set[str]:
    """Every word (lower-cased) of these similarity, analogy or word-list files."""
    return {w for f in files for w in benchmark_words(f, lowercase=True)}


@dataclass(frozen=True)
class LexicalSource:
    """What the lexical loss reads from outside the `finetune` section: its words and how to pool them."""

    words: list[str]
    settings: AloneSettings
    layers: Any  # extract.layers, resolved against the model's depth by `group`
    pooling: str

    @classmethod
    def from_params(cls, params: Params, root: Path = Path(".")) -> LexicalSource | None:
        """The run's lexical source; None when finetune.lexical_weight is 0 (the loss is off)."""
        p = params.finetune
        if p.lexical_weight == 0:
            return None
        if params.prepare.language != LANGUAGE:
            raise EmbedforgeError(
                f"params.yaml: finetune.lexical_weight = {p.lexical_weight} needs prepare.language = "
                f"{LANGUAGE!r} (the words come from jieba's Chinese dictionary), "
                f"not {params.prepare.language!r}"
            )
        exclude = excluded_words(root / f for f in lexical_exclude_files(params))
        words = dictionary_words(p.lexical_words, exclude, p.seed)
        if len(words) < p.lexical_batch:
            raise EmbedforgeError(
                f"params.yaml: finetune.lexical_batch = {p.lexical_batch} is more than the {len(words)} "
                "dictionary words left out of the benchmarks; expected <= finetune.lexical_words"
            )
        e = params.extract
        return cls(words, AloneSettings(e.template, e.positions), e.layers, e.pooling)

    def group(self, depth: int) -> tuple[int, ...]:
        """The hidden_states indices averaged (extract.layers, which must make one matrix)."""
        groups = layer_groups(self.layers, depth, "the model")
        if len(groups) != 1:
            raise EmbedforgeError(
                f"params.yaml: extract.layers = {self.layers!r} makes {len(groups)} matrices; "
                "finetune.lexical_weight > 0 needs one layer or one list of layers (the matrix it trains)"
            )
        return groups[0]

    def key(self) -> dict[str, Any]:
        """What identifies the source for the checkpoint run key."""
        digest = hashlib.sha256("\n".join(self.words).encode()).hexdigest()
        return {
            "words": digest,
            "template": self.settings.template,
            "positions": self.settings.positions,
            "layers": self.layers,
            "pooling": self.pooling,
        }


@dataclass(frozen=True)
class LexicalObjective:
    """The tokenized words and the InfoNCE between two dropout views of a batch of them."""

    weight: float
    batch: int
    temperature: float
    items: list[tuple[list[int], Span]]  # each word's ids (template included) and the positions pooled
    group: tuple[int, ...]  # hidden_states indices averaged
    pooling: str
    pad_id: int

    @classmethod
    def build(cls, source: LexicalSource, p: FinetuneParams, tokenizer: Any, depth: int) -> LexicalObjective:
        """Tokenize the words inside the template once (`p`: the lexical_* keys; `depth`: the model's)."""
        group = source.group(depth)
        # a word inside the template is a few tokens: the cap only tames an unset (huge) model_max_length
        limit = int(min(x for x in (tokenizer.model_max_length, 512) if x and x > 0))
        encoded = encode_words(tokenizer, [source.settings.sentence(w) for w in source.words], limit)
        items = [
            (ids, span) for ids, spans in encoded if (span := source.settings.pooled(ids, spans)) is not None
        ]
        pad = tokenizer.pad_token_id or 0
        return cls(
            p.lexical_weight, p.lexical_batch, p.lexical_temperature, items, group, source.pooling, pad
        )

    def words_at(self, index: int) -> list[tuple[list[int], Span]]:
        """The `index`-th batch of words, cycling through the (already shuffled) list."""
        start = (index * self.batch) % len(self.items)
        return [self.items[(start + i) % len(self.items)] for i in range(self.batch)]

    def vectors(self, model: torch.nn.Module, items: list[tuple[list[int], Span]]) -> torch.Tensor:
        """[n, d]: the words' pooled vectors, as `extract` pools decontext rows (before centering)."""
        ids, mask = pad_batch([i for i, _ in items], self.pad_id)
        device = next(model.parameters()).device
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
        spans = [(row, s, e) for row, (_, (s, e)) in enumerate(items)]
        return pool_spans(out.hidden_states, spans, [self.group], self.pooling)[0]

    def loss(self, model: torch.nn.Module, index: int) -> torch.Tensor:
        """Symmetric InfoNCE between two dropout views of batch `index` (one forward of the batch twice:
        dropout masks differ per row). `model` must be in train mode for the views to differ."""
        batch = self.words_at(index)
        views = F.normalize(self.vectors(model, batch * 2), dim=1)
        a, b = views[: self.batch], views[self.batch :]
        logits = a @ b.T / self.temperature
        target = torch.arange(self.batch, device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
