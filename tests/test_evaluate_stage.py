"""The evaluate step end to end on tiny inputs, the report rebuilt from files, and the stage script."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from embedforge.core.catalog import Catalog, MatrixRecord
from embedforge.core.curves import CurvePlan
from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import CurvesParams, EvaluateParams, parse_params
from embedforge.core.prepared import PreparedData
from embedforge.evaluate import evaluate_all, render, to_metrics, write_results
from embedforge.evaluate.curves import checked_ceiling
from embedforge.evaluate.files import (
    CAPS,
    CLASSIFICATION_FILE,
    NEIGHBOURS_FILE,
    SIMILARITY_FILE,
    MetricsDoc,
    matrix_keys,
)
from embedforge.evaluate.outputs import headline
from embedforge.evaluate.render.curves import curve_section
from embedforge.evaluate.render.report import (
    build_neighbours,
    build_report,
    neighbours_from_files,
    report_from_files,
)
from embedforge.evaluate.results import Results
from embedforge.evaluate.run import probe_splits, row_caps

CURVES = CurvesParams(sizes=[5, 0], seeds=2)  # a small learning curve: two sizes, two draws at 5
MATRICES = [  # name, strategy, layer
    ("cls_base", "cls", None),
    ("decontext_base_L1", "decontext", 1),
    ("decontext_base_L2", "decontext", 2),
]
NAMES = [n for n, *_ in MATRICES]


def _records(words: int, dim: int = 12) -> list[MatrixRecord]:
    return [MatrixRecord(n, s, "base", layer, "mean", "none", words, dim) for n, s, layer in MATRICES]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, prepared_dir: Path, tiny_model_dir: Path) -> dict:
    """Three small matrices over the prepared vocabulary, a tiny classifier, benchmark files."""
    from transformers import AutoModelForSequenceClassification

    root = tmp_path_factory.mktemp("evaluate")
    words = PreparedData(prepared_dir).vocab()["word"].tolist()
    catalog = Catalog(root / "embeddings")
    generator = torch.Generator().manual_seed(0)
    records = _records(len(words))
    for record in records:
        WordVectors(words, torch.randn(len(words), 12, generator=generator)).save(catalog.path(record.name))
    catalog.write_index(records, len(words))
    finetuned = root / "finetuned"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).save_pretrained(
        finetuned
    )
    bench = root / "bench"
    bench.mkdir()
    pairs = [f"{a}\t{b}\t{i % 7}" for i, (a, b) in enumerate(zip(words[:40], words[40:80], strict=True))]
    (bench / "chars.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    (bench / "none.tsv").write_text("火星人\t木星人\t3\n土星人\t金星人\t4\n", encoding="utf-8")
    quads = [" ".join(words[i : i + 4]) for i in range(0, 40, 4)]
    (bench / "quads.txt").write_text(": s\n" + "\n".join(quads) + "\nxx yy zz ww\n", encoding="utf-8")
    params = EvaluateParams(
        # not in name order: the report must not depend on the order of the keys it reads
        similarity_files=[str(bench / "none.tsv"), str(bench / "chars.tsv")],
        analogy_files=[str(bench / "quads.txt")],
        probe_words=[words[0], "不存在的词"],
        neighbours=3,
        probe_epochs=2,
        # a small learning curve: one matrix and the random baseline, two consumers, two sizes
        curve_matrices=["decontext_base_L2", "random*"],
        curve_consumers=["mean", "cnn"],
        curve_min_steps=4,
        cnn_filters=4,
        selection_set=str(bench / "chars.tsv"),  # its dev half picks the recommended matrix
    )
    prepared = PreparedData(prepared_dir)
    # what the `ceiling` stage would write for these curves: the transformer at 5 / class, 2 draws
    plan = CurvePlan.of(prepared.split("train", ["label"])["label"].to_numpy(), [5, 0], 2, params.seed)
    point = {"macro_f1": 0.61, "macro_f1_sd": 0.02, "accuracy": 0.7, "accuracy_sd": 0.01, "runs": 2}
    ceiling = {"sizes": {"5": {**point, "train_rows": 10, "steps": 100, "draws": plan.digest("5")}}}
    return {
        "root": root,
        "prepared": prepared,
        "catalog": catalog,
        "finetuned": finetuned,
        "params": params,
        "curves": CURVES,
        "ceiling": MetricsDoc.of(ceiling, "metrics/ceiling.json"),
    }


def evaluate_inputs(inputs: dict) -> Results:
    """evaluate_all on the module's fixture project, its ceiling file included."""
    return evaluate_all(
        inputs["params"],
        inputs["catalog"],
        inputs["finetuned"],
        inputs["prepared"],
        ceiling=inputs["ceiling"],
        curves=inputs["curves"],
    )


@pytest.fixture(scope="module")
def written(inputs: dict) -> dict:
    """evaluate_all, then write_results and render into a fresh folder."""
    results = evaluate_inputs(inputs)
    out = inputs["root"] / "out"
    write_results(results, out / "metrics", out / "plots")
    render(out / "metrics", out / "plots", inputs["catalog"].records())
    return {"results": results, "metrics": out / "metrics", "plots": out / "plots"}


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_metrics_are_flat_one_number_per_matrix_and_benchmark(written: dict) -> None:
    similarity = _json(written["metrics"] / "similarity.json")
    assert matrix_keys(similarity) == NAMES  # the index's names, never re-derived
    assert similarity["recommended"] in NAMES[1:]  # never the cls baseline
    cls = similarity["cls_base"]
    assert set(cls) == {"chars", "none", "quads", "rows"}
    assert set(cls["chars"]) == {"spearman", "pearson", "coverage", "genuine_coverage"}
    assert cls["chars"]["coverage"] == 1.0 and isinstance(cls["chars"]["spearman"], float)
    assert cls["rows"]["total"] == cls["rows"]["genuine"] > 0  # cls has no fallback rows
    # A benchmark with no pair in the vocabulary: coverage 0, null correlations, and the run went on.
    assert cls["none"] == {"spearman": None, "pearson": None, "coverage": 0.0, "genuine_coverage": 0.0}
    assert cls["quads"]["coverage"] == round(10 / 11, 4)
    classification = _json(written["metrics"] / "classification.json")
    finetuned = classification["finetuned"]
    assert set(finetuned) == {"accuracy", "macro_f1", "per_class", "labels", "confusion"}
    assert finetuned["labels"] == written["results"].classifier.labels
    assert set(finetuned["per_class"]) == set(finetuned["labels"])
    assert sum(map(sum, finetuned["confusion"])) == sum(c["support"] for c in finetuned["per_class"].values())
    assert set(classification["probe"]) == {*NAMES, "random"}
    assert classification["probe"]["random"].keys() == {"frozen", "trainable"}
    assert classification["probe"]["random"]["frozen"].keys() == {"accuracy", "macro_f1"}


def test_readable_files_and_plot_data(written: dict) -> None:
    oov = _json(written["metrics"] / "oov.json")
    assert oov["cls_base"]["none"] == ["土星人", "木星人", "火星人", "金星人"]
    assert oov["cls_base"]["quads"] == ["ww", "xx", "yy", "zz"]
    neighbours = (written["metrics"] / "neighbours.md").read_text(encoding="utf-8")
    assert "## 不存在的词" in neighbours and "(not in the vocabulary)" in neighbours
    report = (written["metrics"] / "report.md").read_text(encoding="utf-8")
    assert "| cls_base |" in report and "| random |" in report and "**" in report
    assert "n/a" not in report and "Fine-tuned classifier" in report and "Confusion matrix" in report
    scatter = pd.read_csv(written["plots"] / "scatter" / "chars.csv")
    assert list(scatter.columns) == ["matrix", "word1", "word2", "human", "cosine"]
    assert list(dict.fromkeys(scatter["matrix"])) == NAMES
    spearman = pd.read_csv(written["plots"] / "spearman.csv")
    assert list(dict.fromkeys(spearman["matrix"])) == NAMES  # every matrix, in the index's order
    per_bench = spearman.groupby("benchmark")["matrix"].nunique()
    assert (per_bench == len(NAMES)).all() and len(per_bench) >= 1  # > 2 points on every panel
    layered = spearman[spearman["layer"].notna()]
    assert sorted(set(layered["layer"])) == [1, 2]  # cls_base has no layer, so it is on no by-layer line
    assert set(layered["series"]) == {"decontext / base"}  # from the records, not from the names
    assert spearman.loc[spearman["matrix"] == "cls_base", "layers"].isna().all()
    confusion = pd.read_csv(written["plots"] / "confusion.csv")
    labels = written["results"].classifier.labels
    assert list(confusion.columns) == ["actual", "predicted"] and set(confusion["actual"].astype(str)) <= set(
        labels
    )
    pngs = sorted(p.name for p in (written["plots"] / "png").iterdir())
    assert pngs == [
        "confusion.png",
        "curves.png",
        "probe.png",
        "scatter_chars.png",
        "scatter_none.png",
        "spearman.png",
        "spearman_by_layer.png",
    ]
    assert all((written["plots"] / "png" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_report_rebuilt_from_files_equals_the_fresh_one(inputs: dict, written: dict) -> None:
    results, records = written["results"], inputs["catalog"].records()
    docs = to_metrics(results)  # in memory: params order, not the sorted keys of the files
    fresh = build_report(
        MetricsDoc.of(docs[SIMILARITY_FILE], SIMILARITY_FILE),
        MetricsDoc.of(docs[CLASSIFICATION_FILE], CLASSIFICATION_FILE),
        results.records,
    )
    assert report_from_files(written["metrics"], records) == fresh
    assert (written["metrics"] / "report.md").read_text(encoding="utf-8") == fresh
    fresh_neighbours = build_neighbours(MetricsDoc.of(docs[NEIGHBOURS_FILE], NEIGHBOURS_FILE), records)
    assert neighbours_from_files(written["metrics"], records) == fresh_neighbours
    assert (written["metrics"] / "neighbours.md").read_text(encoding="utf-8") == fresh_neighbours


def test_seeded_run_reproduces_the_metrics(inputs: dict, written: dict) -> None:
    again = evaluate_inputs(inputs)
    assert to_metrics(again) == to_metrics(written["results"])


def test_training_curves_png_from_dvclive(inputs: dict, written: dict, tmp_path: Path) -> None:
    live = tmp_path / "dvclive" / "plots" / "metrics" / "train"
    live.mkdir(parents=True)
    (live / "loss.tsv").write_text("timestamp\tstep\tloss\n1\t0\t0.7\n2\t1\t0.5\n", encoding="utf-8")
    shutil.copytree(written["plots"] / "scatter", tmp_path / "plots" / "scatter")
    render(written["metrics"], tmp_path / "plots", inputs["catalog"].records(), tmp_path / "dvclive")
    assert (tmp_path / "plots" / "png" / "training.png").is_file()


def test_every_png_text_is_legible_and_chinese_comes_from_the_bundled_font(
    inputs: dict, written: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each figure, as it is saved: no text under plots.MIN_POINTS (8 pt = 11 px at plots.DPI), legends
    at 9 pt or more; a CJK label resolves to the bundled font and draws without a missing glyph."""
    import warnings

    import matplotlib.text
    from matplotlib import font_manager
    from matplotlib.legend import Legend

    from embedforge.evaluate.render import plots

    saved: dict[str, list[tuple[str, float, bool]]] = {}
    save = plots._save

    def record(fig, path: Path) -> None:  # type: ignore[no-untyped-def]
        fig.canvas.draw()
        legends = {id(t) for leg in fig.findobj(Legend) for t in leg.get_texts()}
        saved[path.name] = [
            (t.get_text(), t.get_fontsize(), id(t) in legends)
            for t in fig.findobj(matplotlib.text.Text)
            if t.get_text().strip() and t.get_visible()
        ]
        save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    live = tmp_path / "dvclive" / "plots" / "metrics" / "train"
    live.mkdir(parents=True)
    (live / "loss.tsv").write_text("timestamp\tstep\tloss\n1\t1\t0.7\n2\t2\t0.5\n", encoding="utf-8")
    shutil.copytree(written["plots"] / "scatter", tmp_path / "plots" / "scatter")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        render(written["metrics"], tmp_path / "plots", inputs["catalog"].records(), tmp_path / "dvclive")
        plots.confusion_png(np.array([[3, 1], [0, 4]]), ["好评", "差评"], tmp_path / "cjk.png")
    assert {"spearman.png", "spearman_by_layer.png", "training.png", "confusion.png", "cjk.png"} <= set(saved)
    for name, texts in saved.items():
        for text, size, legend in texts:
            assert size >= plots.MIN_POINTS, (name, text, size)
            assert size * plots.DPI / 72 >= 11, (name, text, size)
            assert not legend or size >= 9, (name, text, size)
    assert any(legend for texts in saved.values() for *_, legend in texts)
    assert "好评" in [t for t, _, _ in saved["cjk.png"]]
    # the font list resolves CJK to the bundled file (matplotlib takes each glyph from the first that has it)
    prop = font_manager.FontProperties(family=plots.FONT_FAMILY)
    files = [Path(f) for f in font_manager.fontManager._find_fonts_by_props(prop)]
    assert plots.CJK_FONT in files and plots.CJK_FONT.is_file()


def test_report_tolerates_missing_keys_from_an_older_run(inputs: dict, written: dict, tmp_path: Path) -> None:
    similarity = _json(written["metrics"] / "similarity.json")
    classification = _json(written["metrics"] / "classification.json")
    del similarity["cls_base"]["chars"]["spearman"]
    del classification["probe"]["decontext_base_L1"]
    del classification["finetuned"]["confusion"]  # an older run had no confusion counts
    (tmp_path / "similarity.json").write_text(json.dumps(similarity), encoding="utf-8")
    (tmp_path / "classification.json").write_text(json.dumps(classification), encoding="utf-8")
    report = report_from_files(tmp_path, inputs["catalog"].records())
    row = next(line for line in report.splitlines() if line.startswith("| cls_base |"))
    assert row.count("n/a") == 1
    row = next(line for line in report.splitlines() if line.startswith("| decontext_base_L1 |"))
    assert row.endswith("| n/a | n/a |")
    assert f"{tmp_path / 'similarity.json'}: cls_base.chars.spearman" in report
    assert f"{tmp_path / 'classification.json'}: probe.decontext_base_L1.frozen.accuracy" in report
    assert "classification.json: finetuned.confusion" in report and "Confusion matrix" not in report


def test_report_rejects_a_value_of_the_wrong_type() -> None:
    records = _records(10)
    bad = MetricsDoc.of({"cls_base": {"ws": {"spearman": "high", "coverage": 1.0}}}, "similarity.json")
    with pytest.raises(
        EmbedforgeError, match=r"similarity.json: cls_base.ws.spearman = 'high'; expected a number"
    ):
        build_report(bad, MetricsDoc.of({}, "classification.json"), records)
    with pytest.raises(EmbedforgeError, match="classification.json: expected a JSON object"):
        MetricsDoc.of([], "classification.json")


def test_report_marks_the_best_per_column_and_compares_cls() -> None:
    records = _records(10)
    similarity = {
        "cls_base": {"ws": {"spearman": 0.5, "coverage": 1.0}},
        "decontext_base_L1": {"ws": {"spearman": 0.6, "coverage": 0.9}},
    }
    probe = {
        n: {"frozen": {"accuracy": a}, "trainable": {"accuracy": a}}
        for n, a in [("cls_base", 0.8), ("decontext_base_L1", 0.85), ("random", 0.7)]
    }
    report = build_report(
        MetricsDoc.of(similarity, "s.json"), MetricsDoc.of({"probe": probe}, "c.json"), records[:2]
    )
    assert "| decontext_base_L1 | **0.600** (90%) | **0.850** | **0.850** |" in report
    assert "| random |  | 0.700 | 0.700 |" in report
    assert "ws: cls best 0.500 (cls_base) is behind the best other strategy 0.600" in report
    assert "best pretrained 0.850 (decontext_base_L1) vs random 0.700: +0.150" in report
    # Strategies come from the records: the same numbers under a record that says `cls` flip the verdict.
    flipped = [replace(records[0], strategy="decontext"), replace(records[1], strategy="cls")]
    report = build_report(
        MetricsDoc.of(similarity, "s.json"), MetricsDoc.of({"probe": probe}, "c.json"), flipped
    )
    assert "ws: cls best 0.600 (decontext_base_L1) is ahead of the best other strategy 0.500" in report


def test_two_shapes_get_one_random_baseline_each(inputs: dict, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "embeddings")
    words = inputs["catalog"].load("cls_base").words
    records = [
        MatrixRecord("a_base", "decontext", "base", 1, "mean", "none", len(words), 6),
        MatrixRecord("b_base", "decontext", "base", 1, "mean", "none", len(words), 4),
    ]
    for record in records:
        WordVectors(words, torch.randn(len(words), record.dim)).save(catalog.path(record.name))
    catalog.write_index(records, len(words))
    params = replace(
        inputs["params"], similarity_files=[], analogy_files=[], probe_epochs=1, selection_set=None
    )
    results = evaluate_all(params, catalog, inputs["finetuned"], inputs["prepared"], curves=CURVES)
    assert list(results.probe) == ["a_base", "b_base", "random_a_base", "random_b_base"]
    docs = {n: MetricsDoc.of(d, n) for n, d in to_metrics(results).items()}
    report = build_report(docs[SIMILARITY_FILE], docs[CLASSIFICATION_FILE], records)
    assert "| random_a_base | " in report and "vs random" in report


def test_duplicate_benchmark_names_are_an_error(inputs: dict, tmp_path: Path) -> None:
    (tmp_path / "chars.tsv").write_text("a\tb\t1\n", encoding="utf-8")
    params = replace(
        inputs["params"], similarity_files=[*inputs["params"].similarity_files, str(tmp_path / "chars.tsv")]
    )
    with pytest.raises(EmbedforgeError, match="two benchmark files named 'chars'"):
        evaluate_all(params, inputs["catalog"], inputs["finetuned"], inputs["prepared"])


def test_classifier_with_wrong_label_count_is_an_error(
    inputs: dict, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3).save_pretrained(
        tmp_path / "m"
    )
    with pytest.raises(EmbedforgeError, match="the model has 3 labels; the prepared data has 2"):
        evaluate_all(inputs["params"], inputs["catalog"], tmp_path / "m", inputs["prepared"])


def _project(inputs: dict, root: Path, params_yaml: str) -> Path:
    """A project folder whose embeddings/, models/finetuned and data/prepared link to the fixture's."""
    (root / "embeddings").symlink_to(inputs["catalog"].root)
    (root / "models").mkdir()
    (root / "models" / "finetuned").symlink_to(inputs["finetuned"])
    (root / "data").mkdir()
    (root / "data" / "prepared").symlink_to(inputs["prepared"].root)
    (root / "params.yaml").write_text(params_yaml, encoding="utf-8")
    return root


def test_stage_writes_the_data_then_the_renderings(inputs: dict, tmp_path: Path, run_stage) -> None:
    p = inputs["params"]
    files = ", ".join(p.similarity_files)
    yaml = f"evaluate:\n  similarity_files: [{files}]\n  analogy_files: []\n  probe_epochs: 1\n"
    yaml += "  curve_consumers: [mean]\ncurves:\n  sizes: [5, 0]\n  seeds: 1\n"
    code, err = run_stage(_project(inputs, tmp_path, yaml), "evaluate")
    assert code == 0, err
    written = sorted(
        str(f.relative_to(tmp_path))
        for d in ("metrics", "plots", "recommended")
        for f in (tmp_path / d).rglob("*")
    )
    assert written == [
        "metrics/by_matrix.json",
        "metrics/classification.json",
        "metrics/headline.json",
        "metrics/neighbours.json",
        "metrics/neighbours.md",
        "metrics/oov.json",
        "metrics/report.md",
        "metrics/similarity.json",
        "plots/confusion.csv",
        "plots/curves.csv",
        "plots/png",
        "plots/png/confusion.png",
        "plots/png/curves.png",
        "plots/png/probe.png",
        "plots/png/scatter_chars.png",
        "plots/png/scatter_none.png",
        "plots/png/spearman.png",
        "plots/png/spearman_by_layer.png",
        "plots/scatter",
        "plots/scatter/chars.csv",
        "plots/scatter/none.csv",
        "plots/spearman.csv",
        "recommended/matrix.json",
    ]
    # per matrix, the probe and every curve cell of classification.json, for `dvc metrics diff`
    compact = json.loads((tmp_path / "metrics/by_matrix.json").read_text(encoding="utf-8"))
    full = json.loads((tmp_path / "metrics/classification.json").read_text(encoding="utf-8"))
    assert {m: v["probe"] for m, v in compact.items()} == {
        m: p["frozen"]["macro_f1"] for m, p in full["probe"].items()
    }
    for matrix, series in full["curves"]["matrices"].items():
        for name, sizes in series.items():
            assert compact[matrix][name] == {size: cell["macro_f1"] for size, cell in sizes.items()}


def test_stage_prints_one_line_and_writes_nothing_on_a_bad_benchmark(
    inputs: dict, tmp_path: Path, run_stage
) -> None:
    (tmp_path / "bad.tsv").write_text("a\tb\t1\nc\td\n", encoding="utf-8")
    code, err = run_stage(
        _project(inputs, tmp_path, "evaluate:\n  similarity_files: [bad.tsv]\n"), "evaluate"
    )
    assert code == 1
    assert err.strip().splitlines() == [
        "error: bad.tsv line 2: expected word1<TAB>word2<TAB>score, got 2 fields"
    ]
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()


def test_stage_shows_the_targets_of_its_model_source_and_fails_fast_on_a_bad_file(
    inputs: dict, tmp_path: Path, run_stage
) -> None:
    files = ", ".join(inputs["params"].similarity_files)
    yaml = f"evaluate:\n  similarity_files: [{files}]\n  analogy_files: []\n  probe_epochs: 1\n"
    yaml += (
        f"  curve_matrices: []\n  selection_set: {inputs['params'].selection_set}\n  targets: targets.yaml\n"
    )
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    bad = _project(inputs, tmp_path / "bad", yaml)
    (bad / "targets.yaml").write_text("source: m\nrecommended: {chars: high}\n", encoding="utf-8")
    code, err = run_stage(bad, "evaluate")
    assert code == 1
    assert err.strip().splitlines() == ["error: targets.yaml: recommended.chars = 'high'; expected a number"]
    assert not (bad / "metrics").exists() and not (bad / "plots").exists()
    good = _project(inputs, tmp_path / "good", yaml)
    source = parse_params({}).model.source  # the project's params leave model.source at its default
    (good / "targets.yaml").write_text(f"source: {source}\nrecommended: {{chars: 0.99}}\n", encoding="utf-8")
    code, _ = run_stage(good, "evaluate")
    assert code == 0
    report = (good / "metrics" / "report.md").read_text(encoding="utf-8")
    assert "| the project's target |" in report and "| ≥ 0.990: missed by " in report


def test_report_opens_with_the_answer_then_what_it_buys(written: dict) -> None:
    """Which matrix (the rule, what it saw, its scores beside the tutorial's), then the learning-curve table
    with the baselines and the transformer ceiling, the classifier beside it; no history, short cells."""
    report = (written["metrics"] / "report.md").read_text(encoding="utf-8")
    chosen = _json(written["metrics"] / "similarity.json")["recommended"]
    assert report.startswith(f"# Evaluation report\n\n## Which matrix to use\n\n**{chosen}** (")
    opening = report.split("## What it buys a small model")[0]
    assert f"| benchmark | {chosen} (recommended) |" in opening
    assert "The rule saw chars:dev; held out: chars:held" in opening
    buys = report.split("## What it buys a small model")[1].split("\n## ")[0]
    assert "| matrix | 5 / class | full split (56) |" in buys and "the fine-tuned classifier itself" in buys
    cells = [c for line in report.splitlines() if line.startswith("|") for c in line.split(" | ")]
    assert max(map(len, cells)) <= 120
    for history in ("issue", "README", "bench/", "Goals", "tried"):
        assert history not in report
    table = report.split("| matrix | 5 / class | full split (56) |")[1].split("\n\n")[0]
    assert "decontext_base_L2 (base encoder)" in table and "random (baseline)" in table
    classifier = written["results"].classifier.metrics()["macro_f1"]
    ceiling = f"| transformer (fine-tuned) | 0.610 ± 0.020 | {classifier:.3f} (1 run) |"  # from ceiling.json
    assert ceiling in table
    assert "![learning curves](../plots/png/curves.png)" in report
    assert (written["plots"] / "png" / "curves.png").is_file()
    curves = pd.read_csv(written["plots"] / "curves.csv")
    assert set(curves["matrix"]) == {"decontext_base_L2", "random", "transformer (fine-tuned)"}
    assert set(curves["series"]) == {"mean_frozen", "cnn_frozen"}
    top = curves[curves["matrix"] == "transformer (fine-tuned)"]  # in every consumer's panel
    assert sorted(zip(top["series"], top["size"], top["macro_f1"], top["runs"], strict=True)) == [
        ("cnn_frozen", "5", 0.61, 2),
        ("cnn_frozen", "full", classifier, 1),
        ("mean_frozen", "5", 0.61, 2),
        ("mean_frozen", "full", classifier, 1),
    ]
    section = _json(written["metrics"] / "classification.json")["curves"]
    assert section["train_rows"] == {"5": 10, "full": 56}
    assert section["matrices"]["random"]["cnn_frozen"]["5"]["runs"] == 2
    assert section["ceiling"]["5"] == {
        "macro_f1": 0.61,
        "macro_f1_sd": 0.02,
        "accuracy": 0.7,
        "accuracy_sd": 0.01,
        "runs": 2,
        "steps": 100,
    }
    assert section["ceiling"]["full"]["runs"] == 1 and section["capped"] == {}


def test_a_ceiling_from_other_draws_is_a_one_line_error(inputs: dict) -> None:
    plan = CurvePlan.of(
        inputs["prepared"].split("train", ["label"])["label"].to_numpy(), [5, 0], 2, inputs["params"].seed
    )
    good = inputs["ceiling"].data["sizes"]["5"]
    for where, bad, expected in [
        ("sizes.5.draws", {**good, "draws": "0123456789abcdef"}, "the digest of the curves' own draws"),
        ("sizes.5.runs", {**good, "runs": 3}, "expected 1 to 2"),
    ]:
        with pytest.raises(EmbedforgeError) as err:
            checked_ceiling(MetricsDoc.of({"sizes": {"5": bad}}, "metrics/ceiling.json"), plan)
        assert str(err.value).startswith(f"metrics/ceiling.json: {where} = ") and expected in str(err.value)
    with pytest.raises(EmbedforgeError, match=r"^metrics/ceiling.json: sizes.7 = .*curves.sizes"):
        checked_ceiling(MetricsDoc.of({"sizes": {"7": good}}, "metrics/ceiling.json"), plan)


def test_report_marks_sizes_that_capped_a_small_class() -> None:
    point = {"macro_f1": 0.5, "macro_f1_sd": 0.0, "accuracy": 0.5, "accuracy_sd": 0.0, "runs": 1}
    curves = {
        "train_rows": {"50": 90, "full": 300},
        "capped": {"50": {"热水器": 40}},
        "matrices": {"random": {"mean_frozen": {"50": point, "full": point}}},
        "ceiling": {},
    }
    doc = MetricsDoc.of({"curves": curves}, CLASSIFICATION_FILE)
    lines = curve_section(doc, [])
    assert "| matrix | 50 / class† | full split (300) |" in lines
    assert "† Classes with fewer training texts give all of theirs: 50 / class: 热水器 (40)." in lines


def test_report_shows_genuine_rows_and_genuine_coverage_per_matrix() -> None:
    records = _records(10)[:2]
    similarity = {
        "cls_base": {
            "ws": {"spearman": 0.5, "coverage": 1.0, "genuine_coverage": 1.0},
            "rows": {"total": 10, "genuine": 10},
        },
        "decontext_base_L1": {
            "ws": {"spearman": 0.6, "coverage": 1.0, "genuine_coverage": 0.66},
            "rows": {"total": 10, "genuine": 7},
        },
    }
    report = build_report(
        MetricsDoc.of(similarity, "s.json"), MetricsDoc.of({"probe": {}}, "c.json"), records
    )
    assert "| matrix | rows | genuine | fallback | ws genuine |" in report
    assert "| decontext_base_L1 | 10 | 7 | 3 | 66% |" in report
    assert "| rows" not in report.split("## Genuine rows")[0]  # `rows` is no benchmark column
    older = {name: {"ws": v["ws"]} for name, v in similarity.items()}  # a run before row counts: no section
    doc = MetricsDoc.of(older, "s.json")
    report = build_report(doc, MetricsDoc.of({"probe": {}}, "c.json"), records)
    assert "Genuine rows" not in report and doc.missing == []


def test_evaluate_device_is_resolved_once_and_reaches_the_classifier_and_the_curves(
    inputs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import embedforge.evaluate.run as run_module

    args = (inputs["catalog"], inputs["finetuned"], inputs["prepared"])
    with pytest.raises(EmbedforgeError, match="evaluate.device = 'tpu'; expected 'cpu', 'cuda'"):
        evaluate_all(replace(inputs["params"], device="tpu"), *args)
    seen = []
    classifier = run_module.score_classifier

    def spy(model_dir: Path, prepared: PreparedData, device: torch.device) -> object:
        seen.append(device)
        return classifier(model_dir, prepared, device)

    def stop(p: EvaluateParams, names: list[str], device: torch.device, draws: object = None) -> None:
        seen.append(device)
        raise KeyboardInterrupt  # the devices are all this test needs

    monkeypatch.setattr(run_module, "score_classifier", spy)
    monkeypatch.setattr(run_module, "CurveRunner", stop)
    with pytest.raises(KeyboardInterrupt):
        evaluate_all(replace(inputs["params"], device="cpu"), *args)
    assert seen == [torch.device("cpu")] * 2


def test_capped_run_uses_the_same_sample_for_every_matrix_and_records_it(inputs: dict) -> None:
    prepared, catalog = inputs["prepared"], inputs["catalog"]
    p = replace(inputs["params"], max_train_rows=20, max_test_rows=8)
    caps = row_caps(p, prepared)
    train_total, test_total = caps.totals["train"], caps.totals["test"]
    assert train_total > 20 and test_total > 8  # the fixture is bigger than the caps
    # two vocabularies (all words, half of them) see the same texts and labels
    words = catalog.load("cls_base").words
    splits = [probe_splits(prepared, {w: i for i, w in enumerate(ws)}, caps) for ws in (words, words[::2])]
    for a, b in zip(*splits, strict=True):
        assert a.labels.tolist() == b.labels.tolist()
    assert [len(s.labels) for s in splits[0]] == [20, 8]

    results = evaluate_all(p, catalog, inputs["finetuned"], prepared, curves=CURVES)
    docs = to_metrics(results)
    expected = {
        "max_train_rows": 20,
        "train_rows": 20,
        "train_rows_total": train_total,
        "max_test_rows": 8,
        "test_rows": 8,
        "test_rows_total": test_total,
    }
    assert docs[CLASSIFICATION_FILE][CAPS] == expected
    assert (
        docs[CLASSIFICATION_FILE]["curves"]["train_rows"]["full"] == 20
    )  # the curve's whole split is capped
    assert sum(map(sum, docs[CLASSIFICATION_FILE]["finetuned"]["confusion"])) == test_total  # never capped
    assert headline(docs)[CAPS] == {"train_rows": 20, "test_rows": 8}
    report = build_report(
        MetricsDoc.of(docs[SIMILARITY_FILE], SIMILARITY_FILE),
        MetricsDoc.of(docs[CLASSIFICATION_FILE], CLASSIFICATION_FILE),
        catalog.records(),
    )
    assert f"trained on 20 of {train_total} training texts" in report
    assert f"scored on 8 of {test_total} test texts" in report


def test_caps_above_the_data_change_nothing(inputs: dict) -> None:
    """The default (0) and caps above the splits give the same files, with no `caps` key anywhere."""
    p = replace(inputs["params"], curve_matrices=[], probe_epochs=1)
    plain = to_metrics(evaluate_all(p, inputs["catalog"], inputs["finetuned"], inputs["prepared"]))
    big = replace(p, max_train_rows=10_000, max_test_rows=10_000)
    assert to_metrics(evaluate_all(big, inputs["catalog"], inputs["finetuned"], inputs["prepared"])) == plain
    assert CAPS not in plain[CLASSIFICATION_FILE] and CAPS not in headline(plain)


@pytest.mark.parametrize("damage", ["truncated", "nan"])
def test_a_damaged_matrix_is_one_line_and_nothing_is_written(
    inputs: dict, tmp_path: Path, run_stage, damage: str
) -> None:
    from safetensors.torch import save_file

    project = tmp_path / "project"
    project.mkdir()
    files = ", ".join(inputs["params"].similarity_files)
    _project(inputs, project, f"evaluate:\n  similarity_files: [{files}]\n  analogy_files: []\n")
    (project / "embeddings").unlink()  # a copy to damage, not the shared fixture
    shutil.copytree(inputs["catalog"].root, project / "embeddings")
    name = _records(1)[0].name
    matrix = project / "embeddings" / f"{name}.safetensors"
    if damage == "truncated":
        matrix.write_bytes(matrix.read_bytes()[:100])
    else:
        words = len(PreparedData(inputs["prepared"].root).vocab())
        save_file({"weight": torch.full((words, 12), float("nan"))}, str(matrix))
    code, err = run_stage(project, "evaluate")
    assert code == 1
    (line,) = err.strip().splitlines()[-1:]
    expected = (
        "truncated or corrupt safetensors file (" if damage == "truncated" else "rows hold NaN or infinite"
    )
    assert line.startswith(f"error: embeddings/{name}.safetensors: ") and expected in line, err
    assert [ln for ln in err.splitlines() if ln.startswith(("error", "Traceback"))] == [line]
    assert not (project / "metrics").exists() and not (project / "plots").exists()
