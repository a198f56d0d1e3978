"""A loaded encoder plus the layer selection and piece pooling shared by the strategies and the lexical loss.

Layer convention: an index into `hidden_states` — 0 is the embedding output (after position embeddings
and LayerNorm), `num_hidden_layers` is the last transformer layer; "last" means that last layer.

Device: an `Encoder` runs its model on the device it was given; batches move there, and pooled vectors
and the input table come back on the CPU, so everything built from them (sums, matrices) stays there.
Precision: the forward pass may run under CUDA autocast (bf16/fp16, `core.device`); the hidden states are
cast back to fp32 before any pooling or sum, so only the model's own arithmetic is in half precision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from embedforge.core.device import autocast, resolve_device, resolve_precision
from embedforge.core.errors import EmbedforgeError
from embedforge.core.models import check_model_dir, load_encoder, load_tokenizer
from embedforge.core.params import POOLINGS, Positions, template_parts

ENCODE_CHUNK = 4096  # sentences tokenized per tokenizer call in `Encoder.encode`
Groups = list[tuple[int, ...]]
Span = tuple[int, int]  # [start, end) positions of a word's pieces in a sequence
# Where factorised-embedding models keep the linear map from the narrow token table to hidden_size.
PROJECTIONS = ("encoder.embedding_hidden_mapping_in", "embeddings_project")  # ALBERT, ELECTRA


def model_depth(model_dir: str | Path) -> int:
    """num_hidden_layers of a model folder (reads config.json only)."""
    from transformers import AutoConfig

    folder = check_model_dir(model_dir)
    return int(AutoConfig.from_pretrained(folder).num_hidden_layers)


def layer_groups(spec: Any, depth: int, where: str = "") -> Groups:
    """`layers` param -> groups of hidden_states indices; each group is averaged into one matrix."""

    def one(value: Any) -> int:
        if value == "last":
            return depth
        if isinstance(value, bool) or not isinstance(value, int) or not -depth - 1 <= value <= depth:
            raise EmbedforgeError(
                f"extract.layers = {value!r} is beyond the depth of {where or 'the model'}; expected "
                f"0..{depth} (hidden_states index: 0 = embedding output, {depth} = last layer), "
                "a list of them, 'last' or 'all'"
            )
        return value % (depth + 1)

    if spec == "all":
        return [(i,) for i in range(depth + 1)]
    if isinstance(spec, list):
        if not spec:
            raise EmbedforgeError("extract.layers = []; expected a non-empty list of layer indices")
        return [tuple(sorted({one(v) for v in spec}))]
    return [(one(spec),)]


def reduce_pieces(tok: torch.Tensor, lengths: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool contiguous runs of pieces: tok [G, total, d] with run i of `lengths[i]` rows -> [G, n, d]."""
    n = len(lengths)
    lengths = lengths.to(tok.device)
    starts = torch.cumsum(lengths, 0) - lengths
    if pooling == "first":
        return tok[:, starts]
    if pooling == "last":
        return tok[:, starts + lengths - 1]
    run = torch.repeat_interleave(torch.arange(n, device=tok.device), lengths)
    out = tok.new_zeros(tok.shape[0], n, tok.shape[2])
    if pooling == "mean":
        return out.index_add_(1, run, tok) / lengths.to(tok.dtype)[None, :, None]
    if pooling == "max":
        index = run[None, :, None].expand_as(tok)
        return out.scatter_reduce_(1, index, tok, reduce="amax", include_self=False)
    raise EmbedforgeError(f"extract.pooling = {pooling!r}; expected one of {', '.join(POOLINGS)}")


def pad_batch(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id lists to the longest: (input_ids, attention_mask), both [B, T] long."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ids in enumerate(batch):
        input_ids[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        mask[i, : len(ids)] = 1
    return input_ids, mask


class Encoder:
    """A tokenizer + bare encoder in eval mode on `device`, with span pooling over token-budget batches.

    `precision`: `fp32`, `bf16`, `fp16` or `auto` (`core.device.resolve_precision`: bf16 on a CUDA GPU
    that has it, fp32 on the CPU, which never autocasts)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", precision: str = "fp32") -> None:
        self.dir = Path(model_dir)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.tokenizer = load_tokenizer(model_dir)
        if not self.tokenizer.is_fast:
            raise EmbedforgeError(
                f"{model_dir}: needs a fast tokenizer (tokenizer.json) to map words to pieces"
            )
        self.model = load_encoder(model_dir)
        self.model.to(self.device)  # type: ignore[arg-type]  # transformers wraps .to() in an odd type
        config = self.model.config
        self.depth = int(config.num_hidden_layers)
        self.dim = int(config.hidden_size)
        limits = [getattr(config, "max_position_embeddings", 512), self.tokenizer.model_max_length]
        self.max_length = int(min(x for x in limits if x and x > 0))
        self.pad_id = self.tokenizer.pad_token_id or 0

    @torch.inference_mode()
    def input_table(self) -> torch.Tensor:
        """The model's input token-embedding matrix [vocab, hidden_size], on the CPU.

        A factorised embedding (ALBERT: 128-wide rows, 312-wide layers) is taken through the model's own
        projection into the hidden size, so `input` vectors are as wide as every other strategy's.
        """
        table = self.model.get_input_embeddings()
        assert isinstance(table, torch.nn.Embedding)
        weight = table.weight.detach()
        if weight.shape[1] != self.dim:
            weight = self._projection(weight.shape[1])(weight)
        return weight.cpu()

    def _projection(self, width: int) -> torch.nn.Linear:
        """The layer mapping `width`-wide token embeddings to hidden_size, or a one-line error."""
        for name in PROJECTIONS:
            try:
                layer = self.model.get_submodule(name)
            except AttributeError:
                continue
            if isinstance(layer, torch.nn.Linear) and (layer.in_features, layer.out_features) == (
                width,
                self.dim,
            ):
                return layer
        raise EmbedforgeError(
            f"{self.dir}: input embeddings are {width} wide but hidden_size is {self.dim}, and the model has "
            f"none of the known projections between them ({', '.join(PROJECTIONS)})"
        )

    def piece_ids(self, words: Sequence[str]) -> list[list[int]]:
        """Each word's subword piece ids (no special tokens)."""
        return self.tokenizer(list(words), add_special_tokens=False)["input_ids"] if words else []

    def encode(self, sentences: Sequence[Sequence[str]]) -> list[tuple[list[int], list[Span | None]]]:
        """Segmented sentences -> (ids with specials, each word's piece span or None: truncated/empty)."""
        out = encode_words(self.tokenizer, sentences, self.max_length)
        for sentence, (ids, spans) in zip(sentences, out, strict=True):
            if len(ids) == self.max_length:
                self._drop_cut_word(sentence, spans)
        return out

    def _drop_cut_word(self, sentence: Sequence[str], spans: list[Span | None]) -> None:
        """In a truncated sequence the last word may have lost pieces: it is then no valid context."""
        kept = [(w, s) for w, s in enumerate(spans) if s is not None]
        if kept:
            last, (start, end) = kept[-1]
            if end - start < len(self.piece_ids([sentence[last]])[0]):
                spans[last] = None

    @torch.inference_mode()
    def hidden(self, ids: Sequence[list[int]]) -> tuple[torch.Tensor, ...]:
        """Forward a batch (padded to its longest sequence); return every layer's states [B, T, d]
        (in the autocast dtype under bf16/fp16: `pool_batch` casts what it pools to fp32)."""
        input_ids, mask = (t.to(self.device) for t in pad_batch(ids, self.pad_id))
        with autocast(self.device, self.precision):
            out = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states

    @torch.inference_mode()
    def pool_batch(
        self, ids: Sequence[list[int]], spans: Iterable[tuple[int, int, int]], groups: Groups, pooling: str
    ) -> torch.Tensor:
        """Forward a batch; pool each (row, start, end) span at each layer group -> [G, spans, d] on CPU."""
        return pool_spans(self.hidden(ids), spans, groups, pooling).cpu()


def encode_words(
    tokenizer: Any, sentences: Sequence[Sequence[str]], max_length: int
) -> list[tuple[list[int], list[Span | None]]]:
    """Segmented sentences -> (ids with specials, each word's piece span or None when it has no pieces).

    A word cut by truncation keeps the pieces that fit (`Encoder.encode` drops such a word)."""
    out = []
    # the tokenizer's per-sequence objects cost ~4 KB each: tokenize a chunk at a time so 100k words
    # do not hold 100k of them at once (measured: 422 MB at 100k words in one call)
    for start in range(0, len(sentences), ENCODE_CHUNK):
        out += _encode_chunk(tokenizer, sentences[start : start + ENCODE_CHUNK], max_length)
    return out


def _encode_chunk(
    tokenizer: Any, sentences: Sequence[Sequence[str]], max_length: int
) -> list[tuple[list[int], list[Span | None]]]:
    enc = tokenizer(
        [list(s) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length
    )
    out = []
    for i, sentence in enumerate(sentences):
        spans: list[list[int] | None] = [None] * len(sentence)
        for pos, w in enumerate(enc.word_ids(i)):
            if w is None:
                continue
            if spans[w] is None:
                spans[w] = [pos, pos + 1]
            else:
                spans[w][1] = pos + 1
        out.append((enc["input_ids"][i], [(s[0], s[1]) if s else None for s in spans]))
    return out


def pool_spans(
    states: Sequence[torch.Tensor], spans: Iterable[tuple[int, int, int]], groups: Groups, pooling: str
) -> torch.Tensor:
    """Pool each (row, start, end) span of hidden states [B, T, d] per layer at each group -> [G, spans, d].

    Differentiable (the joint lexical loss of `finetune` trains through it); fp32 whatever the states' dtype.
    """
    b, t, d = states[0].shape
    device = states[0].device
    rows, starts, ends = (torch.tensor(x, dtype=torch.long, device=device) for x in zip(*spans, strict=True))
    lengths = ends - starts
    run = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
    first = torch.cumsum(lengths, 0) - lengths
    offset = torch.arange(int(lengths.sum()), device=device) - first[run]
    flat = rows[run] * t + starts[run] + offset
    # gather the spans' pieces first: a group average then touches only those rows
    # fp32 from here on (a no-op in fp32): averages and sums never run in half precision
    by_layer = {j: states[j].reshape(b * t, d)[flat].float() for j in sorted({j for g in groups for j in g})}
    tok = torch.stack([sum((by_layer[j] for j in g[1:]), by_layer[g[0]]) / len(g) for g in groups])
    return reduce_pieces(tok, lengths, pooling)


@dataclass(frozen=True)
class AloneSettings:
    """How a word is encoded alone: inside `template` (None: the word by itself) and which positions
    are pooled (`word`: its pieces; `all`: every token of the sequence, specials and template included).
    `extract` builds its decontext matrices with them, `finetune`'s joint lexical loss trains through them."""

    template: str | None = None
    positions: Positions = "word"

    def __post_init__(self) -> None:
        if self.template is not None:
            template_parts(self.template)  # exactly one {w}, else a one-line error

    def sentence(self, word: str) -> list[str]:
        """The sequence as pre-split 'words', so the tokenizer reports which pieces belong to `word`."""
        if self.template is None:
            return [word]
        before, after = template_parts(self.template)
        return [x for x in (before, word, after) if x]

    @property
    def word_at(self) -> int:
        """The index of the word in `sentence`."""
        return 1 if self.template is not None and template_parts(self.template)[0] else 0

    def pooled(self, ids: list[int], spans: list[Span | None]) -> Span | None:
        """The positions pooled in one encoded `sentence`: the word's span, or all of them; None when the
        word has no pieces."""
        span = spans[self.word_at]
        if span is None or self.positions == "word":
            return span
        return (0, len(ids))


class SubwordComposer:
    """Vectors for any words: their subword pieces' rows of a model's input embedding table, pooled."""

    def __init__(self, model: str | Path | Encoder, pooling: str = "mean", device: str = "cpu") -> None:
        self.encoder = model if isinstance(model, Encoder) else Encoder(model, device)
        self.pooling = pooling

    def __call__(self, words: list[str]) -> torch.Tensor:
        """[n, d]; a word with no pieces gets a zero row."""
        pieces = self.encoder.piece_ids(words)
        out = torch.zeros(len(words), self.encoder.dim)
        rows = [i for i, p in enumerate(pieces) if p]
        if rows:
            lengths = torch.tensor([len(pieces[i]) for i in rows])
            flat = torch.tensor([t for i in rows for t in pieces[i]])
            out[rows] = reduce_pieces(self.encoder.input_table()[flat][None], lengths, self.pooling)[0]
        return out
