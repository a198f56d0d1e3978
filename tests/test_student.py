"""The student: teacher logits, distillation, the shipped folder, raw-text predictions, ONNX, bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embedforge import load_classifier
from embedforge.core.catalog import Catalog, MatrixRecord
from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import StudentParams, parse_params
from embedforge.core.prepared import PreparedData
from embedforge.nets.data import to_probe_data
from embedforge.student.classifier import (
    CONFIG,
    ONNX,
    TOKENIZER,
    VOCAB,
    WEIGHTS,
    Classifier,
    student_segmenter,
)
from embedforge.student.run import RULE, run_student, split_data
from embedforge.student.teacher import read_teacher, teacher_logits, write_teacher
from embedforge.student.train import student_loss

MATRICES = ["decontext_base_L1", "decontext_finetuned_L1", "word2vec"]
FAST = {"epochs": 3, "batch_size": 16, "filters": 4, "hidden": 4, "speed_rows": 8}


def _params(**student: object):
    return parse_params({"student": {**FAST, **student}, "prepare": {"max_length": 64}})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prepared_dir: Path, tiny_model_dir: Path) -> dict:
    """Three small matrices over the prepared vocabulary, a tiny fine-tuned classifier and its logits."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("student")
    prepared = PreparedData(prepared_dir)
    words = prepared.vocab()["word"].tolist()
    catalog = Catalog(root / "embeddings")
    generator = torch.Generator().manual_seed(0)
    records = [MatrixRecord(n, "decontext", "base", 1, "mean", "none", len(words), 8) for n in MATRICES]
    for record in records:
        WordVectors(words, torch.randn(len(words), 8, generator=generator)).save(catalog.path(record.name))
    catalog.write_index(records, len(words))
    finetuned = root / "finetuned"
    names = prepared.label_names()
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir,
        num_labels=2,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    model.save_pretrained(finetuned)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(finetuned)
    write_teacher(root / "teacher", teacher_logits(finetuned, prepared), names)
    return {"root": root, "prepared": prepared, "catalog": catalog, "finetuned": finetuned}


def _run(project: dict, out: str, **student: object) -> dict:
    return run_student(
        _params(**student),
        project["catalog"],
        project["prepared"],
        project["root"] / "teacher",
        project["finetuned"],
        project["root"] / out,
    )


@pytest.fixture(scope="module")
def shipped(project: dict) -> dict:
    """A mean student (vectors trained, labels + teacher) on the decontext candidates."""
    return _run(project, "student", consumer="mean", trainable=True, loss="both")


def test_teacher_logits_cover_the_transfer_set_and_check_the_labels(project: dict) -> None:
    prepared = project["prepared"]
    rows = {s: prepared.rows(s) for s in ("train", "validation")}
    logits = read_teacher(project["root"] / "teacher", prepared.label_names(), rows)
    assert logits["train"].shape == (rows["train"], 2)
    with pytest.raises(EmbedforgeError, match="labels differ"):
        read_teacher(project["root"] / "teacher", ["x", "y"], rows)
    with pytest.raises(EmbedforgeError, match=r"train logits have shape \(\d+, 2\); expected \(999, 2\)"):
        read_teacher(project["root"] / "teacher", prepared.label_names(), {"train": 999})


def test_the_shipped_matrix_is_chosen_on_validation_among_the_candidates(shipped: dict) -> None:
    assert shipped["rule"] == RULE
    assert set(shipped["candidates"]) == {"decontext_base_L1", "decontext_finetuned_L1"}  # not word2vec
    best = max(shipped["candidates"].values(), key=lambda c: c["validation_macro_f1"])
    assert shipped["candidates"][shipped["matrix"]] is best
    for scores in (shipped["student"], shipped["transformer"]):
        assert 0.0 <= scores["macro_f1"] <= 1.0 and scores["texts_per_s"] > 0 and scores["disk_mb"] > 0
        assert scores["p50_ms"] <= scores["p95_ms"]
    assert 0.0 < shipped["student"]["coverage"] <= 1.0
    assert shipped["speedup"] == pytest.approx(
        shipped["student"]["texts_per_s"] / shipped["transformer"]["texts_per_s"]
    )


def test_the_student_folder_loads_with_one_call_and_takes_raw_text(project: dict, shipped: dict) -> None:
    folder = project["root"] / "student"
    assert {p.name for p in folder.iterdir()} == {CONFIG, VOCAB, WEIGHTS, ONNX, TOKENIZER}
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    assert config["matrix"] == shipped["matrix"] and len(config["matrix_md5"]) == 32
    assert config["labels"] == project["prepared"].label_names() and config["segmenter"] == "fmm"
    classifier = load_classifier(folder)
    labels = classifier.predict(["味道不错，送餐很快", "太难吃了"])
    assert set(labels) <= set(config["labels"]) and len(labels) == 2
    assert classifier.predict("味道不错，送餐很快") == labels[:1]  # one text as a plain string
    proba = classifier.predict_proba(["味道不错，送餐很快", ""])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1.0, atol=1e-6)
    assert classifier.predict_proba([]).shape == (0, 2)


def test_the_word_table_is_stored_in_float16_and_scores_as_before(project: dict, shipped: dict) -> None:
    state = load_file(str(project["root"] / "student" / WEIGHTS))
    assert state["bag.weight"].dtype == torch.float16
    assert state["linear.weight"].dtype == torch.float32
    test = project["prepared"].split("test", ["text"])["text"].tolist()
    loaded = load_classifier(project["root"] / "student")
    # the same student in float32 (the candidate's test run) and as shipped: the same predictions
    assert shipped["student"]["macro_f1"] == pytest.approx(
        shipped["candidates"][shipped["matrix"]]["test"]["macro_f1"], abs=0.05
    )
    assert loaded.predict_proba(test).shape == (len(test), 2)


@pytest.mark.parametrize("consumer", ["mean", "cnn", "bilstm"])
def test_the_onnx_export_predicts_what_torch_predicts(project: dict, consumer: str) -> None:
    import onnxruntime

    _run(project, f"onnx-{consumer}", consumer=consumer, matrices=["decontext_base_L1"])
    folder = project["root"] / f"onnx-{consumer}"
    classifier = load_classifier(folder)
    texts = [*project["prepared"].split("test", ["text"])["text"].tolist(), "好", ""]
    data = to_probe_data(classifier.segment(texts), [0] * len(texts), classifier.index)
    session = onnxruntime.InferenceSession(str(folder / ONNX), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {"ids": data.ids.numpy()})
    torch_logits = classifier.logits(texts).numpy()
    assert np.allclose(onnx_logits, torch_logits, atol=1e-3)
    assert (onnx_logits.argmax(1) == torch_logits.argmax(1)).all()


def test_a_frozen_bilstm_student_ships_and_predicts(project: dict) -> None:
    metrics = _run(
        project,
        "bilstm",
        consumer="bilstm",
        trainable=False,
        matrices=["decontext_base_L1"],
        segmenter="jieba",
    )
    folder = project["root"] / "bilstm"
    assert (folder / ONNX).is_file() and (folder / WEIGHTS).is_file() and not (folder / TOKENIZER).exists()
    assert metrics["setup"]["consumer"] == "bilstm" and metrics["setup"]["segmenter"] == "jieba"
    classifier = load_classifier(folder)
    assert classifier.segmenter is None and classifier.config.segmenter == "jieba"
    assert len(classifier.predict(["味道不错"])) == 1


def test_the_losses_mix_labels_and_teacher() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    labels, rows = torch.tensor([0, 1]), torch.tensor([0, 1])
    gold = student_loss(StudentParams(loss="labels"), labels, teacher)(logits, rows)
    mse = student_loss(StudentParams(loss="teacher"), labels, teacher)(logits, rows)
    both = student_loss(StudentParams(loss="both", teacher_weight=0.25), labels, teacher)(logits, rows)
    assert gold == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    assert mse == pytest.approx(((logits - teacher) ** 2).mean().item())
    assert both == pytest.approx(0.75 * gold.item() + 0.25 * mse.item())
    kl = student_loss(StudentParams(loss="teacher", distill="kl", temperature=2.0), labels, teacher)
    assert kl(teacher, rows) == pytest.approx(0.0, abs=1e-6)  # the teacher itself: no divergence
    assert kl(logits, rows) > 0


def test_bad_student_settings_are_one_line_and_write_nothing(project: dict) -> None:
    with pytest.raises(EmbedforgeError, match=r"student\.matrices: 'aggregate_\*' matches no matrix"):
        _run(project, "never", matrices=["aggregate_*"])
    assert not (project["root"] / "never").exists()
    with pytest.raises(EmbedforgeError, match=r"student\.consumer = 'gru' is not valid; expected one of"):
        _params(consumer="gru")
    with pytest.raises(EmbedforgeError, match="did you mean 'student.epochs'"):
        _params(epoch=3)


def test_a_teacher_for_other_labels_is_refused_before_training(project: dict, tmp_path: Path) -> None:
    logits = {s: torch.zeros(project["prepared"].rows(s), 3) for s in ("train", "validation")}
    write_teacher(tmp_path / "teacher", logits, ["a", "b", "c"])
    params = _params(loss="both")
    with pytest.raises(EmbedforgeError, match="the teacher's labels differ"):
        run_student(
            params,
            project["catalog"],
            project["prepared"],
            tmp_path / "teacher",
            project["finetuned"],
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()
    # labels only: no teacher needed
    metrics = run_student(
        replace(params, student=replace(params.student, loss="labels", matrices=["word2vec"])),
        project["catalog"],
        project["prepared"],
        tmp_path / "missing",
        project["finetuned"],
        tmp_path / "out",
    )
    assert metrics["matrix"] == "word2vec"


def test_a_folder_that_is_not_a_student_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EmbedforgeError, match="not a student folder"):
        Classifier.load(tmp_path)
    (tmp_path / CONFIG).write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(EmbedforgeError, match="not an embedforge student"):
        Classifier.load(tmp_path)


def test_the_report_headline_and_figure_show_the_student(shipped: dict, tmp_path: Path) -> None:
    from embedforge.evaluate.files import STUDENT_FILE, MetricsDoc
    from embedforge.evaluate.render.plots import student_png
    from embedforge.evaluate.render.student import student_section
    from embedforge.evaluate.render.targets import StudentTargets

    doc = MetricsDoc.of(json.loads(json.dumps(shipped)), STUDENT_FILE)
    lines = student_section(doc, StudentTargets(within=0.01, speedup=1e9, size_ratio=1.0))
    text = "\n".join(lines)
    assert lines[0] == "## The small model to ship"
    assert f"`{shipped['matrix']}` (shipped)" in text and "validation macro-F1" in text
    assert (
        f"{shipped['student']['macro_f1']:.3f}" in text
        and f"{shipped['transformer']['macro_f1']:.3f}" in text
    )
    assert "≥ 1e+09x its texts/s: missed by" in text and "≤ 1/1 of its size: met" in text
    assert student_section(None) == []
    student_png(doc, tmp_path / "student.png")
    assert (tmp_path / "student.png").stat().st_size > 1000


def test_the_headline_carries_the_student(shipped: dict) -> None:
    from embedforge.evaluate.files import STUDENT_FILE
    from embedforge.evaluate.outputs import headline

    minimal = {
        "similarity.json": {},
        "classification.json": {"finetuned": {"macro_f1": 0.9, "accuracy": 0.9}, "probe": {}},
    }
    out = headline({**minimal, STUDENT_FILE: shipped})
    assert out["student_macro_f1"] == shipped["student"]["macro_f1"]
    assert out["student_speedup"] == round(shipped["speedup"], 1)
    assert "student_macro_f1" not in headline(minimal)


@pytest.fixture(scope="module")
def fmm_student(project: dict) -> dict:
    """A frozen BiLSTM student trained and shipped with forward maximum matching."""
    metrics = _run(project, "fmm", consumer="bilstm", segmenter="fmm", matrices=["decontext_base_L1"])
    return {"metrics": metrics, "folder": project["root"] / "fmm"}


def test_an_fmm_student_records_its_segmenter_and_round_trips(project: dict, fmm_student: dict) -> None:
    import onnxruntime

    folder = fmm_student["folder"]
    assert {p.name for p in folder.iterdir()} == {CONFIG, VOCAB, WEIGHTS, ONNX, TOKENIZER}
    assert json.loads((folder / CONFIG).read_text(encoding="utf-8"))["segmenter"] == "fmm"
    assert fmm_student["metrics"]["setup"]["segmenter"] == "fmm"
    classifier = load_classifier(folder)
    assert classifier.segmenter is not None
    texts = [*project["prepared"].split("test", ["text"])["text"].tolist(), "好", ""]
    # what the stage trained and scored on is what the shipped folder reads
    catalog = project["catalog"]
    wv = catalog.load("decontext_base_L1")
    test = split_data(project["prepared"], "test", wv.index, student_segmenter(wv.words, "zh"))
    assert torch.equal(classifier.rows(texts[:-2]).ids, test.ids)
    assert shipped_f1(classifier, project) == pytest.approx(fmm_student["metrics"]["student"]["macro_f1"])
    # the ids are the segmenter's words looked up one by one, without the Python loop
    looked_up = to_probe_data(classifier.segment(texts), [0] * len(texts), classifier.index)
    assert torch.equal(classifier.rows(texts).ids, looked_up.ids)
    session = onnxruntime.InferenceSession(str(folder / ONNX), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {"ids": classifier.rows(texts).ids.numpy()})
    torch_logits = classifier.logits(texts).numpy()
    assert np.allclose(onnx_logits, torch_logits, atol=1e-3)
    assert (onnx_logits.argmax(1) == torch_logits.argmax(1)).all()
    assert classifier.predict(["味道不错，送餐很快"])[0] in classifier.labels


def shipped_f1(classifier: Classifier, project: dict) -> float:
    from embedforge.core.metrics import MACRO_F1, classification_metrics

    test = project["prepared"].split("test", ["text", "label"])
    predicted = classifier.predict_proba(test["text"].tolist()).argmax(-1)
    return classification_metrics(test["label"].to_numpy(), predicted, classifier.labels)[MACRO_F1]


def test_the_fmm_predict_path_has_no_per_text_python_segmentation(
    fmm_student: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = load_classifier(fmm_student["folder"])
    expected = classifier.predict_proba(["味道不错，送餐很快", "太难吃了"])

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("per-text Python segmentation on the predict path")

    monkeypatch.setattr("embedforge.student.classifier.segment_text", refuse)
    monkeypatch.setattr("embedforge.core.segmenter.WordSegmenter.segment", refuse)
    monkeypatch.setattr("embedforge.student.classifier.to_probe_data", refuse)
    assert np.array_equal(classifier.predict_proba(["味道不错，送餐很快", "太难吃了"]), expected)


@pytest.mark.parametrize("consumer", ["cnn", "bilstm"])
def test_the_fast_inference_path_gives_the_training_path_numbers(project: dict, consumer: str) -> None:
    from embedforge.nets.models import NetConfig
    from embedforge.student.train import build_net

    generator = torch.Generator().manual_seed(1)
    model = build_net(consumer, torch.randn(50, 8, generator=generator), 2, False, NetConfig(4, 4, 0.5), None)
    model.eval()
    ids = torch.randint(0, 51, (9, 7), generator=generator)  # 50 = padding, anywhere in a row
    ids = torch.where(torch.arange(7) < torch.tensor([0, 1, 2, 3, 7, 5, 6, 7, 4]).unsqueeze(1), ids, 50)
    plain = model(ids).detach()  # grad enabled: the padded training path
    with torch.inference_mode():
        fast = model(ids)  # the cached standardised table (and for the BiLSTM, packed row ids)
    assert torch.allclose(plain, fast, atol=1e-6)
    with torch.no_grad():  # the cache follows in-place changes of the weights
        model.inputs.embedding.weight.mul_(2.0)
        changed = model(ids)
    with torch.enable_grad():
        assert torch.allclose(model(ids).detach(), changed, atol=1e-6)


def test_an_unknown_segmenter_is_one_line(tmp_path: Path, fmm_student: dict) -> None:
    with pytest.raises(EmbedforgeError, match=r"student\.segmenter = 'bpe' is not valid; expected one of"):
        _params(segmenter="bpe")
    folder = tmp_path / "student"
    shutil.copytree(fmm_student["folder"], folder)
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    (folder / CONFIG).write_text(json.dumps({**config, "segmenter": "bpe"}), encoding="utf-8")
    with pytest.raises(
        EmbedforgeError, match=r'config.json: "segmenter" is \'bpe\'; expected one of jieba, fmm'
    ):
        Classifier.load(folder)
    (folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    (folder / TOKENIZER).unlink()
    with pytest.raises(EmbedforgeError, match="tokenizer.json: no such tokenizer file"):
        Classifier.load(folder)


@pytest.mark.slow
def test_student_speed_bench_smoke_run(
    project: dict, shipped: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy
    import sys

    import yaml

    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "embeddings").symlink_to(project["root"] / "embeddings")
    (root / "data" / "prepared").symlink_to(project["prepared"].root)
    (root / "models" / "finetuned").symlink_to(project["finetuned"])
    (root / "models" / "student").symlink_to(project["root"] / "student")
    student = {**FAST, "matrices": ["decontext_base_L1"]}
    (root / "params.yaml").write_text(
        yaml.safe_dump({"student": student, "prepare": {"max_length": 64}}), encoding="utf-8"
    )
    out = tmp_path / "student_speed"
    argv = ["--project", str(root), "--consumers", "mean", "--segmenters", "jieba,fmm", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["student_speed.py", *argv])
    runpy.run_path(
        str(Path(__file__).resolve().parents[1] / "bench" / "student_speed.py"), run_name="__main__"
    )
    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    names = [r["name"] for r in result["rows"]]
    assert names[0] == "fine-tuned transformer" and "student, mean, jieba" in names
    assert "student, mean, fmm" in names
    assert all(r["texts_per_s"] > 0 and r["p50_ms"] <= r["p95_ms"] for r in result["rows"])
    assert result["machine"]["cpu"] in out.with_suffix(".md").read_text(encoding="utf-8")
