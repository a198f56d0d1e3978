"""DVC stage `extract`: base and fine-tuned encoders -> static word-embedding matrices in embeddings/.

Under `torchrun --nproc-per-node N stages/extract.py` the ranks share the work and rank 0 writes.
"""

import logging
from pathlib import Path

from embedforge.core.files import atomic_path
from embedforge.core.params import lexical_exclude_files, load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.stage import run_stage
from embedforge.extract import run_extract
from embedforge.extract.shard import current_shard

MODELS = {"base": "models/base", "finetuned": "models/finetuned"}
PREPARED = PreparedData(Path("data/prepared"))
OUT = "embeddings"
CHECKPOINTS = Path("checkpoints/extract")  # aggregate corpus passes, when extract.checkpoint_windows > 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    everything = load_params()
    params = everything.extract
    # prepare.language segments extract.corpus as prepare segmented the training data
    options = {
        "device": params.device,
        "language": everything.prepare.language,
        "checkpoint_root": CHECKPOINTS,
        # extract.lexicon: no pair of a benchmark file is ever a constraint
        "benchmarks": lexical_exclude_files(everything),
    }
    if not current_shard().main:  # under torchrun, rank 0 alone writes
        run_extract(params, prepared=PREPARED, model_dirs=MODELS, out_dir=OUT, **options)
        return
    # the whole folder is replaced only when every matrix is written
    with atomic_path(OUT, is_dir=True) as tmp:
        records = run_extract(params, prepared=PREPARED, model_dirs=MODELS, out_dir=tmp, **options)
    print(f"extract: {len(records)} matrices of {records[0].words} words -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
