"""DVC stage `export`: the matrices `export:` names -> exports/ (word2vec, model2vec, projector)."""

from pathlib import Path

from embedforge.core.catalog import Catalog
from embedforge.core.files import atomic_path
from embedforge.core.params import load_params
from embedforge.core.stage import run_stage
from embedforge.export import run_export

CATALOG = Catalog(Path("embeddings"))
OUT = "exports"


def main() -> None:
    params = load_params()
    # the whole folder is replaced only when every export is written
    with atomic_path(OUT, is_dir=True) as tmp:
        chosen = run_export(params.export, CATALOG, tmp, params.prepare.language)
    print(f"export: {sum(len(names) for names in chosen.values())} exports -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
