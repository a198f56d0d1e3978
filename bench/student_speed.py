"""The student's predict path, segmenter by segmenter: segmentation alone, students trained with jieba and
with forward maximum matching (`student.segmenter`), side by side with the fine-tuned transformer.

Run after `dvc repro` (it reads a project's params.yaml, embeddings/, data/prepared/, models/student/ and
models/finetuned/; it writes nothing there):

    python bench/student_speed.py [--project .] [--before-src OLD/src] [--consumers bilstm,mean,cnn]

For each segmenter a BiLSTM student is trained with the project's `student` params (all its candidate
matrices, the best on validation kept, as the stage does), the other consumers on that matrix; each is saved
as the stage ships it, loaded back, and timed with `student.speed` on the raw test texts (segmentation
included): texts/s in calls of 256 and the p50 / p95 milliseconds of one text a call. All rows are timed in
this process one after the other on `--threads` torch threads; `--before-src` adds the committed student
timed by another checkout's code in a child process (the code before a change, in the same run). Writes
`<out>.json` and a Markdown table `<out>.md` headed by the CPU model; the figures belong in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedforge.core.catalog import Catalog
from embedforge.core.files import write_json, write_text
from embedforge.core.metrics import MACRO_F1, classification_metrics
from embedforge.core.params import Params, load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.text import normalize_text, segment_text
from embedforge.core.transformer import TransformerClassifier
from embedforge.student import speed
from embedforge.student.classifier import ONNX, Classifier, student_segmenter
from embedforge.student.run import build_classifier, train_candidates

BEFORE = """
import json, sys, torch
from pathlib import Path
torch.set_num_threads(int(sys.argv[3]))
from embedforge.core.prepared import PreparedData
from embedforge.student import speed
from embedforge.student.classifier import Classifier
texts = PreparedData(Path(sys.argv[1])).split("test", columns=["text"])["text"].tolist()
model = Classifier.load(sys.argv[2])
print(json.dumps({"texts_per_s": speed.throughput(model.predict_proba, texts),
                  **speed.latency_ms(model.predict_proba, texts)}))
"""


def timed(predict: speed.Predict, texts: list[str]) -> dict[str, float]:
    return {"texts_per_s": speed.throughput(predict, texts), **speed.latency_ms(predict, texts)}


def train(
    params: Params, project: Path, segmenter: str, consumers: list[str], out: Path
) -> list[dict[str, Any]]:
    """Students trained with `segmenter`, saved under `out`: the BiLSTM over the candidates, then the rest."""
    catalog, prepared = Catalog(project / "embeddings"), PreparedData(project / "data" / "prepared")
    rows: list[dict[str, Any]] = []
    matrices = params.student.matrices
    for consumer in consumers:
        p = replace(params, student=replace(params.student, segmenter=segmenter, consumer=consumer))
        p = replace(p, student=replace(p.student, matrices=matrices))
        candidates, names = train_candidates(p, catalog, prepared, project / "data" / "teacher")
        best = max(candidates, key=lambda c: c.validation)
        folder = out / f"{consumer}-{segmenter}"
        build_classifier(p, catalog, best, names).save(folder)
        rows.append(
            {
                "name": f"student, {consumer}, {segmenter}",
                "folder": str(folder),
                "matrix": best.name,
                "validation_macro_f1": best.validation,
                "candidates": {c.name: c.validation for c in candidates},
            }
        )
        matrices = [best.name]  # the other consumers on the BiLSTM's matrix
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--before-src", type=Path, default=None, help="time the committed student with it")
    parser.add_argument("--consumers", default="bilstm,mean,cnn", help="the first one picks the matrix")
    parser.add_argument("--segmenters", default="jieba,fmm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/student_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    project = args.project.resolve()
    params = load_params(project / "params.yaml")
    prepared = PreparedData(project / "data" / "prepared")
    test = prepared.split("test", columns=["text", "label"])
    texts, labels = test["text"].tolist(), test["label"].to_numpy()
    language = params.prepare.language
    committed = project / "models" / "student"
    rows: list[dict[str, Any]] = []

    with tempfile.TemporaryDirectory() as tmp:
        students = [
            row
            for seg in args.segmenters.split(",")
            for row in train(params, project, seg, args.consumers.split(","), Path(tmp))
        ]
        # -- timing: every row in this process, one after the other ------------------------------------
        teacher = TransformerClassifier(project / "models" / "finetuned", params.prepare.max_length)
        rows.append({"name": "fine-tuned transformer", **timed(teacher.predict_proba, texts)})
        shipped = Classifier.load(committed)
        fmm = student_segmenter(shipped.words, language)
        rows.append(
            {
                "name": "segmentation only: jieba (`core.text`, HMM), words",
                **timed(lambda b: [segment_text(normalize_text(t), language) for t in b], texts),
            }
        )
        rows.append(
            {"name": "segmentation only: fmm `WordSegmenter.segment`, words", **timed(fmm.segment, texts)}
        )
        rows.append({"name": "segmentation only: fmm `WordSegmenter.ids`, row ids", **timed(fmm.ids, texts)})
        if args.before_src is not None:
            env = {**os.environ, "PYTHONPATH": str(args.before_src.resolve())}
            argv = [sys.executable, "-c", BEFORE, str(prepared.root), str(committed), str(args.threads)]
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            before = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "name": f"committed student ({shipped.config.segmenter}), code of {args.before_src}",
                    **before,
                }
            )
        rows.append(
            {
                "name": f"committed student ({shipped.config.segmenter}), this code",
                **timed(shipped.predict_proba, texts),
            }
        )
        for student in students:
            model = Classifier.load(student["folder"])
            predicted = model.predict_proba(texts).argmax(-1)
            f1 = classification_metrics(labels, predicted, model.labels)[MACRO_F1]
            row = {**student, "test_macro_f1": f1, **timed(model.predict_proba, texts)}
            rows.append({k: v for k, v in row.items() if k != "folder"})
            if model.segmenter is not None and model.config.consumer == "bilstm":
                rows.append(onnx_row(model, Path(student["folder"]), texts, args.threads, row["name"]))
    base = rows[0]["texts_per_s"]
    for row in rows:
        row["vs_transformer"] = row["texts_per_s"] / base
    result = {"machine": speed.machine(), "project": str(project), "texts": len(texts), "rows": rows}
    write_json(args.out.with_suffix(".json"), result)
    write_text(args.out.with_suffix(".md"), table(result))
    print(table(result))


def onnx_row(model: Classifier, folder: Path, texts: list[str], threads: int, name: str) -> dict[str, Any]:
    """The same student through onnxruntime, row ids from the segmenter (`Classifier.rows`)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(folder / ONNX), options, providers=["CPUExecutionProvider"])

    def predict(batch: list[str]) -> np.ndarray:
        return session.run(None, {"ids": model.rows(batch).ids.numpy()})[0]

    return {"name": f"{name}, onnxruntime", **timed(predict, texts)}


def _f(row: dict[str, Any], key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else "—"


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['threads']} torch threads, torch {m['torch']}; "
        f"{result['texts']} test texts, raw text in.",
        "",
        "| row | matrix | validation macro-F1 | test macro-F1 | texts/s (batch 256) | vs transformer "
        "| p50 ms (batch 1) | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['name']} | {r.get('matrix', '—')} | {_f(r, 'validation_macro_f1', '.4f')} "
            f"| {_f(r, 'test_macro_f1', '.4f')} | {r['texts_per_s']:,.0f} | {r['vs_transformer']:.1f}x "
            f"| {r['p50_ms']:.2f} | {r['p95_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
