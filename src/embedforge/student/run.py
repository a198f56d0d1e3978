"""The `student` computation: a student per candidate matrix, the best on validation shipped, then timed
beside the transformer it replaces.

The rule: each matrix of `student.matrices` gets the same student (consumer, loss, seed); the one with the
best validation macro-F1 is shipped (ties: the first in catalog order). The test split is scored for every
candidate but chooses nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from embedforge.core.catalog import Catalog, matching
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import file_md5, staged
from embedforge.core.metrics import ACCURACY, MACRO_F1, classification_metrics
from embedforge.core.params import Params
from embedforge.core.prepared import PreparedData
from embedforge.core.segmenter import WordSegmenter
from embedforge.core.transformer import TransformerClassifier
from embedforge.nets.data import ProbeData, ids_to_probe_data, to_probe_data
from embedforge.student import speed
from embedforge.student.classifier import WEIGHTS, Classifier, StudentConfig, student_segmenter
from embedforge.student.teacher import TEACHER_SPLITS, read_teacher
from embedforge.student.train import Trained, logits_of, net_config, train_student

log = logging.getLogger(__name__)
RULE = "the candidate with the best validation macro-F1 (test scores choose nothing)"


def split_data(
    prepared: PreparedData, split: str, index: dict[str, int], segmenter: WordSegmenter | None = None
) -> ProbeData:
    """One prepared split as padded row ids of a matrix's vocabulary: its `words` (jieba, as `prepare`
    segmented them), or its raw `text` through `segmenter` (fmm, whose ids are the rows)."""
    frame = prepared.split(split, columns=["text" if segmenter else "words", "label"])
    if frame.empty:
        raise EmbedforgeError(
            f"{prepared.split_path(split)}: no rows; the student needs a non-empty {split} split"
        )
    if segmenter is not None:
        ids = segmenter.ids(frame["text"].tolist())  # as `Classifier.rows` reads a text at inference
        return ids_to_probe_data(ids, frame["label"].tolist(), len(index))
    return to_probe_data(frame["words"].tolist(), frame["label"].tolist(), index)


def scores(model: torch.nn.Module, data: ProbeData, names: list[str]) -> dict[str, float]:
    predicted = logits_of(model, data).argmax(-1).numpy()
    result = classification_metrics(data.labels.numpy(), predicted, names)
    return {ACCURACY: result[ACCURACY], MACRO_F1: result[MACRO_F1]}


@dataclass(frozen=True)
class Candidate:
    name: str
    trained: Trained
    test: dict[str, float]

    @property
    def validation(self) -> float:
        return self.trained.validation_macro_f1[self.trained.best_epoch - 1]


def train_candidates(
    params: Params, catalog: Catalog, prepared: PreparedData, teacher_dir: Path
) -> tuple[list[Candidate], list[str]]:
    """The same student on every candidate matrix."""
    p = params.student
    names = prepared.label_names()
    chosen = matching(p.matrices, [r.name for r in catalog.records()], "student.matrices")
    teacher = None
    if p.loss != "labels":
        rows = {s: prepared.rows(s) for s in TEACHER_SPLITS}
        teacher = read_teacher(teacher_dir, names, rows)["train"]
    out = []
    for name in tqdm(chosen, desc="student", unit="matrix", leave=False):
        wv = catalog.load(name)
        segmenter = student_segmenter(wv.words, params.prepare.language) if p.segmenter == "fmm" else None
        train, validation, test = (
            split_data(prepared, s, wv.index, segmenter) for s in ("train", "validation", "test")
        )
        trained = train_student(p, wv.weight, train, teacher, validation, names)
        out.append(Candidate(name, trained, scores(trained.model, test, names)))
        log.info(
            "student on %s: validation macro-F1 %.4f (epoch %d)", name, out[-1].validation, trained.best_epoch
        )
    return out, names


def build_classifier(params: Params, catalog: Catalog, best: Candidate, names: list[str]) -> Classifier:
    wv = catalog.load(best.name)
    p = params.student
    config = StudentConfig(
        consumer=p.consumer,
        labels=names,
        language=params.prepare.language,
        vocab_size=len(wv),
        dim=wv.dim,
        net=dict(net_config(p).__dict__),
        dtype=p.dtype,
        matrix=best.name,
        matrix_md5=file_md5(catalog.path(best.name).with_suffix(".safetensors"), {}),
        segmenter=p.segmenter,
    )
    return Classifier(best.trained.model, wv.words, config)


def side_by_side(
    student_dir: Path, finetuned_dir: Path, prepared: PreparedData, max_length: int, rows: int
) -> dict[str, Any]:
    """Test scores and the speed table of the shipped student and the fine-tuned transformer, loaded from
    their folders and run on the raw test texts, one after the other in this process."""
    test = prepared.split("test", columns=["text", "label"])
    texts, labels = test["text"].tolist(), test["label"].to_numpy()
    timed = texts[:rows] if rows else texts
    student, student_s = speed.timed_load(lambda: Classifier.load(student_dir))
    teacher, teacher_s = speed.timed_load(lambda: TransformerClassifier(finetuned_dir, max_length))
    names = student.labels
    out: dict[str, Any] = {"machine": speed.machine(), "timed_texts": len(timed)}
    for key, model, load_s, folder, skip in (
        ("transformer", teacher, teacher_s, finetuned_dir, ()),
        ("student", student, student_s, student_dir, ("model.onnx",)),
    ):
        predicted = model.predict_proba(texts).argmax(-1)
        result = classification_metrics(labels, predicted, names)
        row = speed.measure(model.predict_proba, timed, load_s, speed.folder_bytes(staged(folder), skip))
        out[key] = {ACCURACY: result[ACCURACY], MACRO_F1: result[MACRO_F1], **row}
    out["student"]["coverage"] = student.coverage(texts)
    out["speedup"] = out["student"]["texts_per_s"] / out["transformer"]["texts_per_s"]
    out["size_ratio"] = out["transformer"]["disk_mb"] / out["student"]["disk_mb"]
    out["weights_file"] = WEIGHTS
    return out


def run_student(
    params: Params,
    catalog: Catalog,
    prepared: PreparedData,
    teacher_dir: Path,
    finetuned_dir: Path,
    out: Path,
) -> dict[str, Any]:
    """Train, choose, ship to `out`, and measure; returns metrics/student.json."""
    candidates, names = train_candidates(params, catalog, prepared, teacher_dir)
    best = max(candidates, key=lambda c: c.validation)  # max keeps the first of equals
    build_classifier(params, catalog, best, names).save(out)
    p = params.student
    return {
        "rule": RULE,
        "matrix": best.name,
        "setup": {
            "consumer": p.consumer,
            "trainable": p.trainable,
            "loss": p.loss,
            "dtype": p.dtype,
            "segmenter": p.segmenter,
        },
        "candidates": {
            c.name: {
                "validation_macro_f1": c.validation,
                "best_epoch": c.trained.best_epoch,
                "test": c.test,
            }
            for c in candidates
        },
        **side_by_side(out, finetuned_dir, prepared, params.prepare.max_length, p.speed_rows),
    }
