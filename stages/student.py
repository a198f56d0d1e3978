"""DVC stage `student`: the small task model -> models/student/; its scores and speed -> metrics/."""

from pathlib import Path

from embedforge.core.catalog import Catalog
from embedforge.core.files import write_json
from embedforge.core.params import load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.stage import run_stage
from embedforge.student.run import run_student

CATALOG = Catalog(Path("embeddings"))
PREPARED = PreparedData(Path("data/prepared"))
TEACHER = Path("data/teacher")
FINETUNED = Path("models/finetuned")
OUT = Path("models/student")
METRICS = Path("metrics/student.json")  # evaluate.files.STUDENT_FILE: evaluate reads it


def main() -> None:
    metrics = run_student(load_params(), CATALOG, PREPARED, TEACHER, FINETUNED, OUT)
    write_json(METRICS, metrics)
    s, t = metrics["student"], metrics["transformer"]
    print(
        f"student: {metrics['matrix']} -> {OUT}/; test macro-F1 {s['macro_f1']:.3f} vs the transformer's "
        f"{t['macro_f1']:.3f}, {metrics['speedup']:.0f}x its texts/s, "
        f"1/{metrics['size_ratio']:.0f} of its size"
    )


if __name__ == "__main__":
    run_stage(main)
