"""DVC stage `extract`: base and fine-tuned encoders -> static word-embedding matrices in embeddings/."""

import logging
from pathlib import Path

from embedforge.core.files import atomic_path
from embedforge.core.params import load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.stage import run_stage
from embedforge.extract import run_extract

MODELS = {"base": "models/base", "finetuned": "models/finetuned"}
PREPARED = PreparedData(Path("data/prepared"))
OUT = "embeddings"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    params = load_params().extract
    # the whole folder is replaced only when every matrix is written
    with atomic_path(OUT, is_dir=True) as tmp:
        records = run_extract(params, prepared=PREPARED, model_dirs=MODELS, out_dir=tmp)
    print(f"extract: {len(records)} matrices of {records[0].words} words -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
