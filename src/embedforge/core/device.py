"""Where torch work runs and in what precision: the one home of the `device` and `precision` params.

`extract.device` and `evaluate.device` resolve through `resolve_device`; `extract.precision` through
`resolve_precision` and `autocast`. Autocast is for CUDA only: on this project's CPUs bf16/fp16 autocast
measured 6-25x slower than fp32, so the CPU always runs fp32 (`auto`) and an explicit bf16/fp16 request
on the CPU is an error, as for `finetune.precision`.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

import torch

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import PRECISIONS

log = logging.getLogger(__name__)
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}
CPU = torch.device("cpu")


def resolve_device(spec: str, key: str = "device") -> torch.device:
    """`cpu`, `cuda`, `cuda:<index>`, or `auto` (cuda when available, else cpu) -> a usable device."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise EmbedforgeError(f"{key} = {spec!r}; expected 'cpu', 'cuda', 'cuda:<index>' or 'auto'")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise EmbedforgeError(
            f"{key} = {spec!r}, but this machine has {torch.cuda.device_count()} CUDA device(s); "
            "expected 'cpu' or 'auto'"
        )
    return device


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` is a CUDA GPU with bf16 kernels (Ampere and later)."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def resolve_precision(spec: str, device: torch.device, key: str = "extract.precision") -> str:
    """`auto` -> `bf16` on a CUDA GPU with bf16 support, else `fp32` (fp16 is never chosen for you: its
    range can overflow hidden states); `fp32`/`bf16`/`fp16` as given. bf16/fp16 on the CPU is an error."""
    if spec not in PRECISIONS:
        raise EmbedforgeError(f"{key} = {spec!r}; expected one of {', '.join(PRECISIONS)}")
    if spec == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if spec != "fp32" and device.type != "cuda":
        raise EmbedforgeError(
            f"{key} = {spec!r} needs a CUDA device (autocast on the CPU is 6-25x slower than fp32); "
            f"expected 'fp32' or 'auto' on {device}"
        )
    if spec == "bf16" and not bf16_supported(device):
        raise EmbedforgeError(f"{key} = 'bf16', but {device} has no bf16 support; expected 'fp16' or 'fp32'")
    return spec


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    """The forward-pass context of a resolved precision: torch.autocast on CUDA for bf16/fp16, else
    nothing (fp32). Callers keep their sums in fp32 (they cast the autocast outputs up first)."""
    if precision == "fp32":
        return nullcontext()
    if device.type != "cuda":  # resolve_precision never returns this; a direct caller might
        raise EmbedforgeError(f"precision {precision!r} on {device}: autocast runs on CUDA only")
    return torch.autocast("cuda", dtype=HALF[precision])
