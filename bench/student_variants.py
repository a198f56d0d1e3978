"""Student variants side by side with the fine-tuned transformer: test macro-F1, texts/s, latency, size.

Run after `dvc repro` (it reads embeddings/, data/prepared/, data/teacher/, models/finetuned/):

    python bench/student_variants.py [--matrix decontext_finetuned_L3_4] [--rows 0]

Every row is trained here with the `student` params of params.yaml except what the row changes, and timed
in this process one after the other on the raw test texts (segmentation included), on torch's default
threads. Prints a Markdown table headed by the CPU model; the figures belong in bench/README.md.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from embedforge.core.catalog import Catalog
from embedforge.core.metrics import MACRO_F1, classification_metrics
from embedforge.core.params import load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.transformer import TransformerClassifier
from embedforge.evaluate.probe import random_matrix
from embedforge.student import speed
from embedforge.student.classifier import Classifier, StudentConfig, student_segmenter
from embedforge.student.run import split_data
from embedforge.student.teacher import TEACHER_SPLITS, read_teacher
from embedforge.student.train import net_config, train_student

VARIANTS = [  # (label, matrix override or None, changes to the student params)
    ("mean, trainable, labels + teacher", None, {}),
    ("mean, trainable, labels only", None, {"loss": "labels"}),
    ("mean, frozen, labels + teacher", None, {"trainable": False}),
    ("cnn, frozen, labels + teacher", None, {"consumer": "cnn", "trainable": False, "lr": 1e-3}),
    ("bilstm, frozen, labels + teacher", None, {"consumer": "bilstm", "trainable": False, "lr": 1e-3}),
    ("mean, trainable, labels + teacher, on word2vec", "word2vec", {}),
    ("mean, trainable, labels + teacher, on a random matrix", "random", {}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", default=None, help="default: the shipped student's matrix")
    parser.add_argument("--rows", type=int, default=0, help="test texts timed; 0 = all")
    args = parser.parse_args()
    params = load_params()
    prepared, catalog = PreparedData(Path("data/prepared")), Catalog(Path("embeddings"))
    names = prepared.label_names()
    matrix = args.matrix or StudentConfig.read(Path("models/student/config.json")).matrix
    teacher = read_teacher("data/teacher", names, {s: prepared.rows(s) for s in TEACHER_SPLITS})["train"]
    test = prepared.split("test", columns=["text", "label"])
    texts, labels = test["text"].tolist(), test["label"].to_numpy()
    timed = texts[: args.rows] if args.rows else texts
    peak = speed.machine()
    rows = []
    model, load_s = speed.timed_load(
        lambda: TransformerClassifier("models/finetuned", params.prepare.max_length)
    )
    f1 = classification_metrics(labels, model.predict_proba(texts).argmax(-1), names)[MACRO_F1]
    base = speed.measure(model.predict_proba, timed, load_s, speed.folder_bytes("models/finetuned"))
    rows.append(("fine-tuned transformer", f1, base))
    for label, override, changes in VARIANTS:
        p = replace(params.student, **changes)
        wv = catalog.load(matrix if override in (None, "random") else override)
        weight = random_matrix(wv.weight, 0) if override == "random" else wv.weight
        segmenter = student_segmenter(wv.words, params.prepare.language) if p.segmenter == "fmm" else None
        splits = [split_data(prepared, s, wv.index, segmenter) for s in ("train", "validation")]
        trained = train_student(p, weight, splits[0], teacher, splits[1], names)
        net = dict(net_config(p).__dict__)
        language = params.prepare.language
        config = StudentConfig(
            p.consumer, names, language, len(wv), wv.dim, net, p.dtype, segmenter=p.segmenter
        )
        with tempfile.TemporaryDirectory() as tmp:
            Classifier(trained.model, wv.words, config).save(Path(tmp) / "s", onnx=False)
            student, load_s = speed.timed_load(lambda: Classifier.load(Path(tmp) / "s"))  # noqa: B023
            f1 = classification_metrics(labels, student.predict_proba(texts).argmax(-1), names)[MACRO_F1]
            row = speed.measure(student.predict_proba, timed, load_s, speed.folder_bytes(Path(tmp) / "s"))
        rows.append((f"student: {label}", f1, row))
    print(
        f"{peak['cpu']}, {peak['threads']} threads, torch {peak['torch']}; matrix {matrix}; "
        f"{len(timed):,} raw test texts timed\n"
    )
    print("| model | test macro-F1 | texts/s (batch 256) | vs transformer | p50 / p95 ms | on disk |")
    print("|---|---|---|---|---|---|")
    for label, f1, r in rows:
        print(
            f"| {label} | {f1:.3f} | {r['texts_per_s']:,.0f} | "
            f"{r['texts_per_s'] / base['texts_per_s']:.0f}x | "
            f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} | {r['disk_mb']:.1f} MB |"
        )
    torch.set_num_threads(1)
    jieba_rate = speed.throughput(lambda batch: [Classifier.segment(student, batch)], timed)
    print(f"\njieba segmentation alone (1 thread): {jieba_rate:,.0f} texts/s")


if __name__ == "__main__":
    main()
