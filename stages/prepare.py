"""DVC stage `prepare`: raw labelled text -> data/prepared/ (splits, label map, vocabulary) + metrics."""

from embedforge.core.files import write_json
from embedforge.core.models import load_tokenizer, max_positions
from embedforge.core.params import load_params
from embedforge.core.stage import run_stage
from embedforge.prepare import prepare

MODEL = "models/base"
OUT = "data/prepared"
METRICS = "metrics/prepare.json"


def main() -> None:
    params = load_params().prepare
    tokenizer = load_tokenizer(MODEL)
    metrics = prepare(params, tokenizer, OUT, max_positions=max_positions(MODEL, tokenizer))
    write_json(METRICS, metrics)
    c = metrics["cleaning"]
    print(
        f"prepare: {metrics['rows']} rows, vocabulary {metrics['vocab']['size']} words -> {OUT} "
        f"(labels: {c['labels_normalized']} normalized, {c['dropped_missing_label']} missing dropped)"
    )


if __name__ == "__main__":
    run_stage(main)
