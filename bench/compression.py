"""What a smaller matrix costs: PCA to fewer dimensions and float16 / int8 storage (the `export` stage's
`pca_dims` and `quantize_to`), measured in word similarity and in the shipped student's F1.

Run after `dvc repro` (it reads embeddings/, data/prepared/ and params.yaml):

    python bench/compression.py [--similarity-matrix NAME] [--student-matrix NAME] [--dims 256 128 64]

Similarity: every `evaluate.similarity_files` set, Spearman of the compressed matrix (the vectors an export
gives after its PCA and its storage round trip). Student: the `student` params of params.yaml on the
student's matrix reduced by PCA, trained once per dimension on float32 (the matrix is frozen by default,
so its storage does not change training), then scored on validation and test with the word table stored
as each dtype. Size: the matrix alone, rows x dims x bytes. Prints a Markdown table headed by the CPU
model; the figures belong in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from embedforge.core.benchmarks import benchmark_name, read_pairs
from embedforge.core.catalog import Catalog
from embedforge.core.params import Params, load_params
from embedforge.core.prepared import PreparedData
from embedforge.evaluate.similarity import word_similarity
from embedforge.export.compress import STORAGES, compressed, dequantize, pca, quantize
from embedforge.student import speed
from embedforge.student.run import scores, split_data
from embedforge.student.train import train_student, word_table

ROOT = Path(__file__).resolve().parents[1]
BYTES = {"float32": 4, "float16": 2, "int8": 1}
RESULTS = ROOT / "bench" / "results"
RESULTS = ROOT / "bench" / "results"
SETS: set[str] = set()  # the similarity sets' names: their cells are Spearman values


def similarity_rows(
    catalog: Catalog, name: str, dims: list[int | None], files: list[str], lowercase: bool
) -> list[dict]:
    wv = catalog.load(name)
    sets = {benchmark_name(f): read_pairs(f, lowercase) for f in files}
    rows = []
    for d in dims:
        for storage in STORAGES:
            small = compressed(wv, d, storage)  # type: ignore[arg-type]
            rho = {b: word_similarity(small, pairs).spearman for b, pairs in sets.items()}
            rows.append(
                {
                    "dims": small.dim,
                    "storage": storage,
                    "mb": len(wv) * small.dim * BYTES[storage] / 1e6,
                    **rho,
                }
            )
    return rows


def student_rows(
    catalog: Catalog, name: str, dims: list[int | None], params: Params, prepared: PreparedData
) -> list[dict]:
    wv = catalog.load(name)
    names = prepared.label_names()
    data = {s: split_data(prepared, s, wv.index) for s in ("train", "validation", "test")}
    rows = []
    for d in dims:
        reduced = pca(wv, d)
        start = time.perf_counter()
        trained = train_student(
            params.student, reduced.weight, data["train"], None, data["validation"], names
        )
        train_s = time.perf_counter() - start
        table = word_table(trained.model)
        full = table.data.clone()
        for storage in STORAGES:
            with torch.no_grad():
                table.data.copy_(dequantize(*quantize(full, storage)))  # type: ignore[arg-type]
            val = scores(trained.model, data["validation"], names)
            test = scores(trained.model, data["test"], names)
            rows.append(
                {
                    "dims": reduced.dim,
                    "storage": storage,
                    "validation_macro_f1": val["macro_f1"],
                    "test_macro_f1": test["macro_f1"],
                    "train_s": round(train_s, 1),
                }
            )
        with torch.no_grad():
            table.data.copy_(full)
    return rows


def table(rows: list[dict], keys: list[str]) -> str:
    head = "| dims | storage | " + " | ".join(keys) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 2)]
    for r in rows:
        cells = [f"{r[k]:.4f}" if k.endswith("f1") or k in SETS else f"{r[k]}" for k in keys]
        lines.append(f"| {r['dims']} | {r['storage']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--similarity-matrix", help="default: metrics/similarity.json's recommended matrix")
    ap.add_argument("--student-matrix", help="default: the shipped student's (models/student/config.json)")
    ap.add_argument("--dims", type=int, nargs="*", default=[256, 128, 64])
    ap.add_argument("--no-student", action="store_true", help="similarity only (seconds)")
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    catalog = Catalog(ROOT / "embeddings")
    sim_name = (
        args.similarity_matrix or json.loads((ROOT / "metrics/similarity.json").read_text())["recommended"]
    )
    student_name = (
        args.student_matrix or json.loads((ROOT / "models/student/config.json").read_text())["matrix"]
    )
    dims: list[int | None] = [None, *args.dims]
    torch.set_num_threads(2)
    head = f"CPU: {speed.cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    files = params.evaluate.similarity_files
    sim = similarity_rows(catalog, sim_name, dims, files, params.evaluate.lowercase)
    sets = [benchmark_name(f) for f in files]
    SETS.update(sets)
    for r in sim:
        r["mb"] = f"{r['mb']:.1f}"
    parts = [head, f"Similarity (Spearman), {sim_name}:", table(sim, ["mb", *sets])]
    rows: list[dict] = []
    if not args.no_student:
        rows = student_rows(catalog, student_name, dims, params, PreparedData(ROOT / "data/prepared"))
        frozen = "trainable" if params.student.trainable else "frozen"
        parts += [
            f"Student ({params.student.consumer}, {frozen} matrix), {student_name}:",
            table(rows, ["validation_macro_f1", "test_macro_f1", "train_s"]),
        ]
    text = "\n\n".join(parts) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compression.md").write_text(text, encoding="utf-8")
    document = {"machine": speed.machine(), "similarity": sim, "student": rows}
    (RESULTS / "compression.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
