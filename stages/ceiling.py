"""DVC stage `ceiling`: models/base fine-tuned on each learning-curve subset -> metrics/ceiling.json.

The transformer ceiling of the curve table at the small training sizes (see embedforge.finetune.ceiling).
"""

from __future__ import annotations

from pathlib import Path

from embedforge.core.curves import CEILING_SIZES
from embedforge.core.files import write_json
from embedforge.core.params import load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.stage import run_stage
from embedforge.finetune.ceiling import run_ceiling

OUT = Path("metrics/ceiling.json")


def main() -> None:
    document = run_ceiling(load_params(), Path("models/base"), PreparedData())
    write_json(OUT, document)
    sizes = document[CEILING_SIZES]
    print(f"ceiling: {len(sizes)} training sizes ({', '.join(sizes) or 'none'}) -> {OUT}")


if __name__ == "__main__":
    run_stage(main)
