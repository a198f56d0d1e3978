"""DVC stage `extract`: base and fine-tuned encoders -> static word-embedding matrices in embeddings/."""

from embedforge.cli import run_stage
from embedforge.extract import run_extract
from embedforge.io import atomic_path
from embedforge.params import load_params

MODELS = {"base": "models/base", "finetuned": "models/finetuned"}
VOCAB = "data/prepared/vocab.parquet"
CORPUS = "data/prepared/train.parquet"
OUT = "embeddings"


def main() -> None:
    params = load_params().extract
    # the whole folder is replaced only when every matrix is written
    with atomic_path(OUT, is_dir=True) as tmp:
        records = run_extract(params, vocab_path=VOCAB, corpus_path=CORPUS, model_dirs=MODELS, out_dir=tmp)
    print(f"extract: {len(records)} matrices of {records[0]['words']} words -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
