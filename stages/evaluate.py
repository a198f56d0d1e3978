"""DVC stage `evaluate`: every embedding matrix and the fine-tuned classifier -> metrics/, plots/."""

from pathlib import Path

from embedforge.core.params import load_params
from embedforge.core.stage import run_stage
from embedforge.evaluate import evaluate_all, write_results

EMBEDDINGS = "embeddings"
FINETUNED = "models/finetuned"
PREPARED = "data/prepared"
DVCLIVE = "dvclive"
METRICS = "metrics"
PLOTS = "plots"


def main() -> None:
    params = load_params().evaluate
    results = evaluate_all(params, EMBEDDINGS, FINETUNED, PREPARED)
    # Training curves are drawn only when finetune left its DVCLive folder behind.
    write_results(results, METRICS, PLOTS, DVCLIVE if Path(DVCLIVE).is_dir() else None)
    finetuned = results.classification["finetuned"]
    print(
        f"evaluate: {len(results.entries)} matrices, {len(results.sims)} similarity and "
        f"{len(results.analogies)} analogy sets; fine-tuned accuracy {finetuned['accuracy']:.3f} "
        f"-> {METRICS}/report.md"
    )


if __name__ == "__main__":
    run_stage(main)
