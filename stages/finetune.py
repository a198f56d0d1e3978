"""Stage `finetune`: train models/base as a classifier on data/prepared, keep the best by validation macro-F1.

Writes models/finetuned/, metrics/finetune.json and dvclive/; resumes from checkpoints/finetune/.
With finetune.distributed = ddp (or EMBEDFORGE_NPROC=N) it re-launches itself under torchrun.
"""

from __future__ import annotations

import sys
from pathlib import Path

from embedforge.core.metrics import MACRO_F1
from embedforge.core.params import load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.stage import run_stage
from embedforge.finetune import finetune
from embedforge.finetune.launch import launch_torchrun, requested_nproc, world_size
from embedforge.finetune.lexical import LexicalSource

OUT = Path("models/finetuned")
CHECKPOINTS = Path("checkpoints/finetune")


def main() -> None:
    """Run the stage in the current directory (the repository root under DVC)."""
    params = load_params()
    p = params.finetune
    lexical = LexicalSource.from_params(params)  # None unless finetune.lexical_weight > 0
    prepared = PreparedData()
    nproc = requested_nproc(p)
    if world_size() == 1 and nproc > 1:
        sys.exit(launch_torchrun(Path(__file__).resolve(), nproc, prepared, p, CHECKPOINTS))
    metrics = finetune(
        p,
        base_dir=Path("models/base"),
        prepared=prepared,
        out_dir=OUT,
        metrics_path=Path("metrics/finetune.json"),
        live_dir=Path("dvclive"),
        checkpoint_root=CHECKPOINTS,
        lexical=lexical,
        lr=params.lr,
    )
    if metrics:  # rank 0 only
        print(
            f"finetune: best step {metrics['best_step']} of {metrics['steps']}, validation "
            f"{MACRO_F1} {metrics[MACRO_F1]:.4f} -> {OUT}"
        )


if __name__ == "__main__":
    run_stage(main)
