"""DVC stage `evaluate`: every embedding matrix and the fine-tuned classifier -> metrics/, plots/."""

from pathlib import Path

from embedforge.core.catalog import Catalog
from embedforge.core.metrics import ACCURACY
from embedforge.core.params import load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.recommended import publish_recommended
from embedforge.core.stage import run_stage
from embedforge.evaluate import evaluate_all, render, write_results
from embedforge.evaluate.files import CEILING_FILE, MetricsDoc
from embedforge.evaluate.render.targets import for_source

CATALOG = Catalog(Path("embeddings"))
FINETUNED = "models/finetuned"
PREPARED = PreparedData(Path("data/prepared"))
DVCLIVE = Path("dvclive")
METRICS = "metrics"
CEILING = Path(METRICS) / CEILING_FILE  # the `ceiling` stage's (absent: full split only)
PLOTS = "plots"


def main() -> None:
    everything = load_params()
    params = everything.evaluate
    targets = for_source(params.targets, everything.model.source)  # first: a bad file fails fast
    ceiling = MetricsDoc.read(CEILING) if CEILING.is_file() else None
    results = evaluate_all(params, CATALOG, FINETUNED, PREPARED, ceiling, everything.curves)
    write_results(results, METRICS, PLOTS)  # the data first: metrics/*.json, plot tables
    publish_recommended()  # recommended/matrix.*: the pick's files under a name that never changes
    # then what is rendered from those files; training curves only when finetune left its DVCLive folder
    render(METRICS, PLOTS, CATALOG.records(), DVCLIVE if DVCLIVE.is_dir() else None, targets)
    print(
        f"evaluate: {len(results.records)} matrices; fine-tuned accuracy "
        f"{results.classifier.metrics()[ACCURACY]:.3f} -> {METRICS}/report.md"
    )


if __name__ == "__main__":
    run_stage(main)
