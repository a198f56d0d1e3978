"""The evaluate step end to end on tiny inputs, the report, and the stage script's error path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import EvaluateParams
from embedforge.evaluate import evaluate_all, write_results
from embedforge.evaluate.report import build_report, report_from_files
from embedforge.evaluate.run import read_index

ROOT = Path(__file__).resolve().parents[1]
MATRICES = [
    ("cls_base", "cls", None),
    ("decontext_base_L1", "decontext", 1),
    ("decontext_base_L2", "decontext", 2),
]


def _prepared(root: Path, reviews_csv: Path, tokenizer_dir: Path) -> Path:
    """A data/prepared folder from the 80 fixture reviews; words are characters (no jieba needed)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    df = pd.read_csv(reviews_csv).rename(columns={"review": "text"})
    df["input_ids"] = tokenizer(df["text"].tolist(), truncation=True, max_length=64)["input_ids"]
    df["length"] = df["input_ids"].map(len).astype("int32")
    df["words"] = df["text"].map(lambda t: [c for c in t if not c.isspace()])
    out = root / "prepared"
    out.mkdir()
    for name, part in {"train": df.iloc[::2], "validation": df.iloc[1::4], "test": df.iloc[3::4]}.items():
        part[["text", "label", "input_ids", "length", "words"]].to_parquet(
            out / f"{name}.parquet", index=False
        )
    (out / "labels.json").write_text(json.dumps({"names": ["neg", "pos"]}), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, reviews_csv: Path, tiny_model_dir: Path) -> dict:
    """Prepared data, three small matrices with an index, a tiny fine-tuned classifier, benchmark files."""
    from transformers import AutoModelForSequenceClassification

    root = tmp_path_factory.mktemp("evaluate")
    prepared = _prepared(root, reviews_csv, tiny_model_dir)
    words = sorted({c for t in pd.read_csv(reviews_csv)["review"] for c in t if not c.isspace()})
    emb = root / "embeddings"
    generator = torch.Generator().manual_seed(0)
    for name, *_ in MATRICES:
        WordVectors(words, torch.randn(len(words), 12, generator=generator)).save(emb / name)
    index = [
        {"name": n, "strategy": s, "source": "base", "layer": layer, "pooling": "mean", "postprocess": None}
        for n, s, layer in MATRICES
    ]
    (emb / "index.json").write_text(json.dumps({"matrices": index}), encoding="utf-8")
    finetuned = root / "finetuned"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).save_pretrained(
        finetuned
    )
    bench = root / "bench"
    bench.mkdir()
    pairs = [f"{a}\t{b}\t{i % 7}" for i, (a, b) in enumerate(zip(words[:40], words[40:80], strict=True))]
    (bench / "chars.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    (bench / "none.tsv").write_text("火星\t木星\t3\n土星\t金星\t4\n", encoding="utf-8")
    quads = [" ".join(words[i : i + 4]) for i in range(0, 40, 4)]
    (bench / "quads.txt").write_text(": s\n" + "\n".join(quads) + "\nxx yy zz ww\n", encoding="utf-8")
    params = EvaluateParams(
        similarity_files=[str(bench / "chars.tsv"), str(bench / "none.tsv")],
        analogy_files=[str(bench / "quads.txt")],
        probe_words=[words[0], "不存在的词"],
        neighbours=3,
        probe_epochs=2,
    )
    return {"root": root, "prepared": prepared, "emb": emb, "finetuned": finetuned, "params": params}


@pytest.fixture(scope="module")
def written(inputs: dict) -> dict:
    """evaluate_all + write_results into a fresh folder."""
    results = evaluate_all(inputs["params"], inputs["emb"], inputs["finetuned"], inputs["prepared"])
    out = inputs["root"] / "out"
    write_results(results, out / "metrics", out / "plots")
    return {"results": results, "metrics": out / "metrics", "plots": out / "plots"}


def test_metrics_are_flat_one_number_per_matrix_and_benchmark(written: dict) -> None:
    similarity = json.loads((written["metrics"] / "similarity.json").read_text(encoding="utf-8"))
    assert set(similarity) == {n for n, *_ in MATRICES}
    cls = similarity["cls_base"]
    assert set(cls) == {"chars", "none", "quads"}
    assert set(cls["chars"]) == {"spearman", "pearson", "coverage"}
    assert cls["chars"]["coverage"] == 1.0 and isinstance(cls["chars"]["spearman"], float)
    # A benchmark with no pair in the vocabulary: coverage 0, null correlations, and the run went on.
    assert cls["none"] == {"spearman": None, "pearson": None, "coverage": 0.0}
    assert cls["quads"]["coverage"] == round(10 / 11, 4)
    classification = json.loads((written["metrics"] / "classification.json").read_text(encoding="utf-8"))
    assert set(classification["finetuned"]) == {"accuracy", "macro_f1", "per_class"}
    assert set(classification["finetuned"]["per_class"]) == {"neg", "pos"}
    assert set(classification["probe"]) == {"cls_base", "decontext_base_L1", "decontext_base_L2", "random"}
    assert set(classification["probe"]["random"]) == {"frozen", "trainable"}


def test_readable_files_and_plot_data(written: dict) -> None:
    oov = json.loads((written["metrics"] / "oov.json").read_text(encoding="utf-8"))
    assert oov["cls_base"]["none"] == ["土星", "木星", "火星", "金星"]
    assert oov["cls_base"]["quads"] == ["ww", "xx", "yy", "zz"]
    neighbours = (written["metrics"] / "neighbours.md").read_text(encoding="utf-8")
    assert "## 不存在的词" in neighbours and "(not in the vocabulary)" in neighbours
    report = (written["metrics"] / "report.md").read_text(encoding="utf-8")
    assert "| cls_base |" in report and "| random |" in report and "**" in report
    assert "n/a" not in report and "Fine-tuned classifier" in report
    scatter = pd.read_csv(written["plots"] / "scatter" / "chars.csv")
    assert list(scatter.columns) == ["matrix", "word1", "word2", "human", "cosine"]
    assert set(scatter["matrix"]) == {n for n, *_ in MATRICES}
    layers = pd.read_csv(written["plots"] / "spearman_by_layer.csv")
    assert sorted(set(layers["layer"])) == [1, 2]  # cls_base has no layer, so it is not on this plot
    confusion = pd.read_csv(written["plots"] / "confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and set(confusion["actual"]) <= {"neg", "pos"}
    pngs = sorted(p.name for p in (written["plots"] / "png").iterdir())
    assert pngs == [
        "confusion.png",
        "probe.png",
        "scatter_chars.png",
        "scatter_none.png",
        "spearman_by_layer.png",
    ]
    assert all((written["plots"] / "png" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_seeded_run_reproduces_the_metrics(inputs: dict, written: dict) -> None:
    again = evaluate_all(inputs["params"], inputs["emb"], inputs["finetuned"], inputs["prepared"])
    assert again.similarity == written["results"].similarity
    assert again.classification == written["results"].classification


def test_training_curves_png_from_dvclive(inputs: dict, written: dict, tmp_path: Path) -> None:
    live = tmp_path / "dvclive" / "plots" / "metrics" / "train"
    live.mkdir(parents=True)
    (live / "loss.tsv").write_text("timestamp\tstep\tloss\n1\t0\t0.7\n2\t1\t0.5\n", encoding="utf-8")
    write_results(written["results"], tmp_path / "metrics", tmp_path / "plots", tmp_path / "dvclive")
    assert (tmp_path / "plots" / "png" / "training.png").is_file()


def test_report_tolerates_missing_keys_from_an_older_run(written: dict, tmp_path: Path) -> None:
    similarity = json.loads((written["metrics"] / "similarity.json").read_text(encoding="utf-8"))
    classification = json.loads((written["metrics"] / "classification.json").read_text(encoding="utf-8"))
    del similarity["cls_base"]["chars"]["spearman"]
    del classification["probe"]["decontext_base_L1"]
    (tmp_path / "s.json").write_text(json.dumps(similarity), encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps(classification), encoding="utf-8")
    report = report_from_files(tmp_path / "s.json", tmp_path / "c.json")
    row = next(line for line in report.splitlines() if line.startswith("| cls_base |"))
    assert row.count("n/a") == 1
    assert "s.json: cls_base.chars.spearman" in report
    assert "c.json: probe.decontext_base_L1.frozen.accuracy" in report


def test_report_rejects_a_value_of_the_wrong_type() -> None:
    with pytest.raises(EmbedforgeError, match=r"similarity.json: m.ws.spearman = 'high'; expected a number"):
        build_report({"m": {"ws": {"spearman": "high", "coverage": 1.0}}}, {})
    with pytest.raises(EmbedforgeError, match="classification.json: expected a JSON object"):
        build_report({}, [])  # type: ignore[arg-type]


def test_report_marks_the_best_per_column_and_compares_cls() -> None:
    similarity = {
        "cls_base": {"ws": {"spearman": 0.5, "coverage": 1.0}},
        "decontext_base_L4": {"ws": {"spearman": 0.6, "coverage": 0.9}},
    }
    probe = {
        n: {"frozen": {"accuracy": a}, "trainable": {"accuracy": a}}
        for n, a in [("cls_base", 0.8), ("decontext_base_L4", 0.85), ("random", 0.7)]
    }
    report = build_report(similarity, {"probe": probe})
    assert "| decontext_base_L4 | **0.600** (90%) | **0.850** | **0.850** |" in report
    assert "| random |  | 0.700 | 0.700 |" in report
    assert "ws: cls best 0.500 (cls_base) is behind the best other strategy 0.600" in report
    assert "best pretrained 0.850 (decontext_base_L4) vs random 0.700: +0.150" in report


def test_read_index_errors(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text(json.dumps({"matrices": [{"strategy": "cls"}]}), encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=r"index.json: matrices\[0\] has no 'name'"):
        read_index(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"matrices": []}), encoding="utf-8")
    with pytest.raises(EmbedforgeError, match="at least one matrix"):
        read_index(tmp_path)


def test_duplicate_benchmark_names_are_an_error(inputs: dict, tmp_path: Path) -> None:
    (tmp_path / "chars.tsv").write_text("a\tb\t1\n", encoding="utf-8")
    params = replace(
        inputs["params"], similarity_files=[*inputs["params"].similarity_files, str(tmp_path / "chars.tsv")]
    )
    with pytest.raises(EmbedforgeError, match="two benchmark files named 'chars'"):
        evaluate_all(params, inputs["emb"], inputs["finetuned"], inputs["prepared"])


def test_classifier_with_wrong_label_count_is_an_error(
    inputs: dict, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3).save_pretrained(
        tmp_path / "m"
    )
    with pytest.raises(EmbedforgeError, match="the model has 3 labels; the prepared data has 2"):
        evaluate_all(inputs["params"], inputs["emb"], tmp_path / "m", inputs["prepared"])


def test_stage_script_prints_one_line_and_writes_nothing_on_a_bad_benchmark(
    inputs: dict, tmp_path: Path
) -> None:
    os.symlink(inputs["emb"], tmp_path / "embeddings")
    (tmp_path / "models").mkdir()
    os.symlink(inputs["finetuned"], tmp_path / "models" / "finetuned")
    (tmp_path / "data").mkdir()
    os.symlink(inputs["prepared"], tmp_path / "data" / "prepared")
    (tmp_path / "bad.tsv").write_text("a\tb\t1\nc\td\n", encoding="utf-8")
    (tmp_path / "params.yaml").write_text("evaluate:\n  similarity_files: [bad.tsv]\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "evaluate.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: bad.tsv line 2: expected word1<TAB>word2<TAB>score, got 'c\\td'"
    ]
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()
