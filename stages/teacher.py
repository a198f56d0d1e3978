"""DVC stage `teacher`: the fine-tuned transformer's logits on the transfer set -> data/teacher/."""

from pathlib import Path

from embedforge.core.device import resolve_device
from embedforge.core.prepared import PreparedData
from embedforge.core.stage import run_stage
from embedforge.student.teacher import teacher_logits, write_teacher

FINETUNED = "models/finetuned"
PREPARED = PreparedData(Path("data/prepared"))
OUT = "data/teacher"


def main() -> None:
    device = resolve_device("auto")  # a GPU when there is one; the logits are the same up to rounding
    logits = teacher_logits(FINETUNED, PREPARED, device)
    write_teacher(OUT, logits, PREPARED.label_names())
    print(f"teacher: logits of {', '.join(f'{len(v):,} {k}' for k, v in logits.items())} texts -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
