"""Matrices for the TensorBoard projector: `<name>.tsv` + `<name>.meta.tsv`, one `projector_config.pbtxt`.

Open with `tensorboard --logdir exports/projector` (the projector reads the config in the log folder itself).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from embedforge.core.embedding import WordVectors
from embedforge.core.files import write_text

CONFIG_FILE = "projector_config.pbtxt"


def projector_config(shapes: Mapping[str, tuple[int, int]]) -> str:
    """The ProjectorConfig text proto listing each matrix's TSV pair and shape (paths relative to it)."""
    blocks = []
    for name, (rows, dim) in shapes.items():
        quoted = {k: json.dumps(v) for k, v in (("n", name), ("t", f"{name}.tsv"), ("m", f"{name}.meta.tsv"))}
        blocks.append(
            "embeddings {\n"
            f"  tensor_name: {quoted['n']}\n"
            f"  tensor_path: {quoted['t']}\n"
            f"  metadata_path: {quoted['m']}\n"
            f"  tensor_shape: {rows}\n"
            f"  tensor_shape: {dim}\n"
            "}\n"
        )
    return "".join(blocks)


def write_projector(matrices: Mapping[str, WordVectors], folder: str | Path) -> Path:
    """Write every matrix's TSV pair into `folder`, then the config that lists them; return the config."""
    folder = Path(folder)
    for name, wv in matrices.items():
        wv.save_projector(folder / name)
    config = folder / CONFIG_FILE
    write_text(config, projector_config({name: (len(wv), wv.dim) for name, wv in matrices.items()}))
    return config
