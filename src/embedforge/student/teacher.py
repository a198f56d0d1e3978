"""`data/teacher/`: the fine-tuned transformer's logits on the transfer set, computed once (the `teacher`
stage) so that every student experiment reuses them.

Layout: `logits.safetensors` with one float32 tensor [rows, labels] per split of TEACHER_SPLITS, in the
prepared split's row order, and the label names in its metadata (`labels`, JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from embedforge.core.device import CPU
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path
from embedforge.core.prepared import PreparedData
from embedforge.core.transformer import classifier_logits, load_classifier_model

TEACHER_SPLITS = ("train", "validation")
LOGITS_FILE = "logits.safetensors"


def teacher_logits(
    model_dir: str | Path, prepared: PreparedData, device: torch.device = CPU
) -> dict[str, torch.Tensor]:
    """The fine-tuned classifier's logits on each split of TEACHER_SPLITS."""
    model = load_classifier_model(model_dir, len(prepared.label_names()))
    out = {}
    for split in TEACHER_SPLITS:
        ids = prepared.split(split, columns=["input_ids"])["input_ids"].tolist()
        out[split] = torch.as_tensor(classifier_logits(model, ids, device=device))
    return out


def write_teacher(folder: str | Path, logits: dict[str, torch.Tensor], labels: list[str]) -> None:
    """Write data/teacher/ atomically."""
    with atomic_path(folder, is_dir=True) as tmp:
        save_file(logits, str(tmp / LOGITS_FILE), metadata={"labels": json.dumps(labels, ensure_ascii=False)})


def read_teacher(folder: str | Path, labels: list[str], rows: dict[str, int]) -> dict[str, torch.Tensor]:
    """The cached logits; an error unless they are for these label names and these split sizes."""
    path = Path(folder) / LOGITS_FILE
    if not path.is_file():
        raise EmbedforgeError(f"{path}: file not found (run the teacher stage first)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (OSError, SafetensorError) as err:
        raise EmbedforgeError(f"{path}: not a readable safetensors file ({err})") from None
    if json.loads(meta.get("labels", "null")) != labels:
        raise EmbedforgeError(
            f"{path}: the teacher's labels differ from data/prepared/labels.json; expected {labels}"
        )
    for split, n in rows.items():
        got = tensors.get(split)
        if got is None or tuple(got.shape) != (n, len(labels)):
            shape = None if got is None else tuple(got.shape)
            raise EmbedforgeError(f"{path}: {split} logits have shape {shape}; expected ({n}, {len(labels)})")
    return tensors
