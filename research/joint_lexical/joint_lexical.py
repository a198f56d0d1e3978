"""Joint lexical loss (issue 10): score the recommended matrix and the classifier of pipeline runs that
differ in `finetune.lexical_weight`.

Each RUN is a pipeline folder after `dvc repro extract` (or a copy of its outputs): its
`embeddings/<matrix>` is scored as the evaluate stage scores it (`bench/peers.py`'s `score`: Spearman per
similarity set, the selection set's dev / held-out halves, 3CosAdd analogy), and its `models/finetuned`
classifies the test split of DATA (`evaluate.classification.score_classifier`, the evaluate stage's
`finetuned` entry); the validation macro-F1 is the run's `metrics/finetune.json`.

    python bench/joint_lexical.py --data /tmp/run/data/prepared w0.1=/tmp/results/w0.1 w1=/tmp/results/w1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from peers import score  # bench/ is on sys.path when this file runs as a script

from embedforge.core.embedding import WordVectors
from embedforge.core.metrics import MACRO_F1
from embedforge.core.prepared import PreparedData
from embedforge.evaluate.classification import score_classifier

ROOT = Path(__file__).resolve().parents[1]
MATRIX = "decontext_finetuned_L2_3_4"
COLUMNS = {
    "multisimlex_zh:dev": "msl_dev (selection)",
    "multisimlex_zh:held": "msl_held",
    "multisimlex_zh": "msl",
    "wordsim240": "wordsim240",
    "wordsim297": "wordsim297",
    "ca_translated": "analogy",
}


def score_run(folder: Path, data: PreparedData, matrix: str) -> dict:
    """The matrix's scores, the classifier's test macro-F1 and the run's validation macro-F1."""
    sets = score(WordVectors.load(folder / "embeddings" / matrix))
    row = {k: sets[k].get("spearman", sets[k].get("accuracy")) for k in COLUMNS}
    row["test_macro_f1"] = round(score_classifier(folder / "models/finetuned", data).metrics()[MACRO_F1], 4)
    validation = json.loads((folder / "metrics/finetune.json").read_text(encoding="utf-8"))
    row["validation_macro_f1"] = round(validation[MACRO_F1], 4)
    return row


def table(rows: dict[str, dict]) -> str:
    """A markdown table, one row per run."""
    head = ["run", *COLUMNS.values(), "test macro-F1", "validation macro-F1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in rows.items():
        cells = [row[k] for k in [*COLUMNS, "test_macro_f1", "validation_macro_f1"]]
        lines.append(
            f"| {label} | " + " | ".join("–" if c is None else f"{c:.3f}".lstrip("0") for c in cells) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=FOLDER")
    ap.add_argument("--data", default="data/prepared", help="the runs' prepared data (the test split)")
    ap.add_argument("--matrix", default=MATRIX)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "joint_lexical_scores"))
    args = ap.parse_args()
    data = PreparedData(Path(args.data))
    rows = {}
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        rows[label] = score_run(Path(folder), data, args.matrix)
        print(label, rows[label], flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(table(rows), encoding="utf-8")


if __name__ == "__main__":
    main()
