"""The small models on a static word matrix: what a user would put on top of `nn.Embedding`.

`MeanProbe` is the mean of the word vectors and a linear layer; `KimCNN` is Kim (2014): convolutions of widths
3/4/5 over the word vectors, max-pooled over time, dropout, a linear layer; `BiLSTMMax` is a bidirectional
LSTM whose outputs are max-pooled over the words. Each runs with the matrix frozen or trainable. The word
vectors enter the CNN and the BiLSTM standardised per dimension (a fixed affine map from the matrix's own
rows), so matrices of very different scales are equally easy to optimise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from embedforge.nets.data import ProbeData

CNN_WIDTHS = (3, 4, 5)
PREDICT_BATCH = 256  # test texts per forward pass (bounds the memory of a [batch, words, dim] tensor)


@dataclass(frozen=True)
class NetConfig:
    """Sizes of the CNN and the BiLSTM."""

    filters: int = 64  # CNN filters per width
    hidden: int = 64  # BiLSTM hidden size per direction
    dropout: float = 0.5


def _exporting() -> bool:
    """Whether the model is being traced (the ONNX export): the plain operations, no cached tensors."""
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


class WordInputs(nn.Module):
    """Row ids -> standardised word vectors [batch, words, dim], zero at padding (`pad` = vocabulary size)."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, weight: torch.Tensor, trainable: bool) -> None:
        super().__init__()
        self.pad = weight.shape[0]
        padded = torch.cat([weight, weight.new_zeros(1, weight.shape[1])])
        self.embedding = nn.Embedding.from_pretrained(
            padded, freeze=not trainable, sparse=True, padding_idx=self.pad
        )
        self.register_buffer("shift", weight.mean(0))
        self.register_buffer("scale", weight.std(0).clamp_min(1e-6))

        self._table: tuple[tuple[int, ...], torch.Tensor] | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled() or _exporting():
            vectors = (self.embedding(ids) - self.shift) / self.scale
            return vectors * (ids != self.pad).unsqueeze(-1)
        return F.embedding(ids, self.standardised())

    def standardised(self) -> torch.Tensor:
        """The standardised table (padding row zero) for inference: one lookup per word instead of a lookup,
        a subtraction, a division and a mask over [batch, words, dim]. The same numbers; cached until the
        weights change (in-place updates and `load_state_dict` bump the tensors' versions)."""
        weight = self.embedding.weight
        key = (weight.data_ptr(), weight._version, self.shift._version, self.scale._version)
        if self._table is None or self._table[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # an ordinary tensor, usable anywhere
                table = (weight - self.shift) / self.scale
                table[self.pad] = 0.0
            self._table = (key, table)
        return self._table[1]


class KimCNN(nn.Module):
    """Kim (2014): convolutions of several widths, ReLU, max over time, dropout, linear."""

    def __init__(self, weight: torch.Tensor, num_labels: int, trainable: bool, net: NetConfig) -> None:
        super().__init__()
        self.inputs = WordInputs(weight, trainable)
        dim = weight.shape[1]
        self.convs = nn.ModuleList(nn.Conv1d(dim, net.filters, w) for w in CNN_WIDTHS)
        self.dropout = nn.Dropout(net.dropout)
        self.linear = nn.Linear(net.filters * len(CNN_WIDTHS), num_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        short = max(CNN_WIDTHS) - ids.shape[1]
        if short > 0:  # a text shorter than the widest filter: pad (zero vectors), as Kim does
            ids = F.pad(ids, (0, short), value=self.inputs.pad)
        x = self.inputs(ids).transpose(1, 2)  # [batch, dim, words]
        lengths = (ids != self.inputs.pad).sum(1, keepdim=True)
        pooled = []
        for width, conv in zip(CNN_WIDTHS, self.convs, strict=True):
            out = F.relu(conv(x))  # [batch, filters, positions]
            # only windows that start inside the text (at least the first): the scores do not depend
            # on how far a batch is padded, so batching by length changes no prediction
            valid = torch.arange(out.shape[-1], device=out.device) < (lengths - width + 1).clamp_min(1)
            pooled.append(out.masked_fill(~valid.unsqueeze(1), 0.0).amax(-1))
        return self.linear(self.dropout(torch.cat(pooled, -1)))


class BiLSTMMax(nn.Module):
    """A bidirectional LSTM over the words, its outputs max-pooled over the real words, dropout, linear."""

    def __init__(self, weight: torch.Tensor, num_labels: int, trainable: bool, net: NetConfig) -> None:
        super().__init__()
        self.inputs = WordInputs(weight, trainable)
        self.lstm = nn.LSTM(weight.shape[1], net.hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(net.dropout)
        self.linear = nn.Linear(2 * net.hidden, num_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != self.inputs.pad).sum(1).clamp_min(1)  # a text without known words: one pad
        if _exporting():  # the padded form, which the ONNX exporter maps to its LSTM with lengths
            # packing takes its lengths on the CPU, whatever the device
            packed = pack_padded_sequence(
                self.inputs(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
            real = torch.arange(out.shape[1], device=out.device).unsqueeze(0) < lengths.unsqueeze(1)
            pooled = out.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(1)
            return self.linear(self.dropout(pooled))
        # the same numbers, cheaper: pack the row ids, then look up only the real words' vectors (no
        # [batch, longest, dim] tensor to build, mask and reorder), and pad the outputs with -inf for the max
        packed_ids = pack_padded_sequence(ids, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed = PackedSequence(
            self.inputs(packed_ids.data),
            packed_ids.batch_sizes,
            packed_ids.sorted_indices,
            packed_ids.unsorted_indices,
        )
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, padding_value=float("-inf"))
        return self.linear(self.dropout(out.amax(1)))


Net = Callable[[torch.Tensor, int, bool, NetConfig], nn.Module]
NETS: dict[str, Net] = {"cnn": KimCNN, "bilstm": BiLSTMMax}
CONSUMERS: tuple[str, ...] = ("mean", *NETS)


class MeanProbe(nn.Module):
    """Mean of word vectors (an empty text gives zeros), standardised, then a linear layer."""

    shift: torch.Tensor  # buffers, registered in __init__
    scale: torch.Tensor

    def __init__(
        self, weight: torch.Tensor, num_labels: int, trainable: bool, train: ProbeData | None
    ) -> None:
        super().__init__()
        self.pad = weight.shape[0]
        padded = torch.cat([weight, weight.new_zeros(1, weight.shape[1])])  # row `pad`: never in a mean
        self.bag = nn.EmbeddingBag.from_pretrained(
            padded, freeze=not trainable, mode="mean", sparse=True, padding_idx=self.pad
        )
        # Fixed standardisation from the initial train features: a linear map, so the model class is
        # unchanged, but matrices of very different scales become equally easy to optimise. Without
        # `train` (a saved model about to be loaded) the buffers are placeholders.
        shift, scale = weight.new_zeros(weight.shape[1]), weight.new_ones(weight.shape[1])
        if train is not None:
            with torch.no_grad():
                feats = self.bag(train.ids)
            shift, scale = feats.mean(0), feats.std(0).clamp_min(1e-6)
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)
        self.linear = nn.Linear(weight.shape[1], num_labels)
        nn.init.zeros_(self.linear.weight)  # convex when frozen: a zero start is deterministic and fine
        nn.init.zeros_(self.linear.bias)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from mean word vectors."""
        return self.linear((feats - self.shift) / self.scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(ids))
