"""The project's targets: an ordinary, fingerprinted input, shown in the report only where they apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedforge.core.catalog import MatrixRecord
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import load_params, parse_params
from embedforge.evaluate.files import CLASSIFICATION_FILE, SIMILARITY_FILE, MetricsDoc
from embedforge.evaluate.render.curves import curve_section
from embedforge.evaluate.render.report import build_report
from embedforge.evaluate.render.targets import CurveTargets, Targets, for_source, read_targets
from embedforge.fingerprint import stage_fingerprints

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "pkg:embedding/m3e-small"


def test_the_committed_targets_are_for_the_default_model_and_named_in_params() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.evaluate.targets == "data/targets.yaml"
    targets = read_targets(ROOT / params.evaluate.targets)
    assert targets.source == params.model.source == SOURCE
    assert targets.recommended == {
        "wordsim240": 0.66,
        "wordsim297": 0.72,
        "multisimlex_zh": 0.63,
        "ca_translated": 0.432,
    }
    assert targets.curves == CurveTargets(
        consumers=("cnn_frozen", "bilstm_frozen"),
        over_random={"50": 0.10, "200": 0.10},
        over_word2vec={"50": 0.05, "200": 0.05},
        finetuned_ahead=("50", "200", "1000", "full"),
    )
    assert for_source(ROOT / params.evaluate.targets, "pkg:other/model") is None  # another model: none
    assert for_source(None, SOURCE) is None


def test_targets_file_is_a_fingerprinted_param() -> None:
    params = parse_params({"evaluate": {"targets": str(ROOT / "data/targets.yaml")}})
    assert stage_fingerprints(params)["evaluate"]["targets"]["md5"]
    assert stage_fingerprints(parse_params({}))["evaluate"]["targets"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", r"\(top level\) = \[\]; expected a mapping"),
        ("recommended: {}", "source = None; expected the model.source"),
        ("source: m\ngoals: {}", "unknown key goals; expected one of curves, recommended, source"),
        ("source: m\nrecommended: {ws: high}", "recommended.ws = 'high'; expected a number"),
        ("source: m\ncurves: {over_random: {tiny: 0.1}}", "curves.over_random.tiny = 'tiny'"),
        ("source: m\ncurves: {finetuned_ahead: [0]}", r"curves.finetuned_ahead\[0\] = 0"),
        ("source: m\ncurves: {margin: 1}", "unknown key curves.margin"),
        ("source: m\nsource: n", "not valid YAML"),
    ],
)
def test_a_bad_targets_file_is_a_one_line_error_naming_file_and_key(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=message) as err:
        for_source(path, "m")
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    with pytest.raises(EmbedforgeError, match="targets file not found"):
        read_targets(tmp_path / "missing.yaml")


def _similarity() -> MetricsDoc:
    best = {"wordsim240": {"spearman": 0.7}, "multisimlex_zh": {"spearman": 0.6}, "ca": {"accuracy": 0.4}}
    shown = {"wordsim240": {"spearman": 0.7}, "multisimlex_zh": {}}
    return MetricsDoc.of(
        {"best": best, "recommended": "best", "selection": {"matrices": {"best": shown}}},
        SIMILARITY_FILE,
    )


def test_report_states_the_recommended_targets_that_apply_met_or_missed_by_how_much() -> None:
    targets = Targets(
        "t.yaml", SOURCE, {"wordsim240": 0.66, "multisimlex_zh": 0.63, "ca": 0.432, "wordsim297": 0.72}
    )
    classification = MetricsDoc.of({"probe": {}}, CLASSIFICATION_FILE)
    report = build_report(_similarity(), classification, [], targets)
    assert "| benchmark | best (recommended) | the project's target |" in report
    assert "| wordsim240 ρ | 0.700 | ≥ 0.660: met |" in report
    assert "| multisimlex_zh ρ | – | ≥ 0.630: missed by 0.030 |" in report  # no interval in the record
    assert "| ca acc | 0.400 | ≥ 0.432: missed by 0.032 |" in report
    assert "wordsim297" not in report  # a set the run lacks is left out
    assert "target" not in build_report(_similarity(), classification, [])  # no targets: no line
    other = Targets("t.yaml", SOURCE, {"simlex999": 0.5})  # e.g. an English run: nothing applies
    assert "target" not in build_report(_similarity(), classification, [], other)


def _point(f1: float) -> dict[str, float]:
    return {"macro_f1": f1, "macro_f1_sd": 0.0, "accuracy": f1, "accuracy_sd": 0.0, "runs": 1}


def test_curve_targets_apply_at_their_sizes_only() -> None:
    records = [
        MatrixRecord("decontext_base_L1", "decontext", "base", 1, "mean", "none", 5, 2),
        MatrixRecord("decontext_finetuned_L1", "decontext", "finetuned", 1, "mean", "none", 5, 2),
        MatrixRecord("word2vec", "word2vec", None, None, None, "none", 5, 2),
    ]
    curves = {
        "train_rows": {"50": 100, "1000": 900, "full": 950},
        "capped": {},
        "matrices": {
            "decontext_base_L1": {"cnn_frozen": {k: _point(0.80) for k in ("50", "1000", "full")}},
            "decontext_finetuned_L1": {
                "cnn_frozen": {"50": _point(0.86), "1000": _point(0.80), "full": _point(0.9)},
                "mean_frozen": {"50": _point(0.99)},  # not a consumer the margins count
            },
            "word2vec": {"cnn_frozen": {k: _point(0.82) for k in ("50", "1000", "full")}},
            "random": {"cnn_frozen": {k: _point(0.70) for k in ("50", "1000", "full")}},
        },
        "ceiling": {},
    }
    doc = MetricsDoc.of({"curves": curves}, CLASSIFICATION_FILE)
    goal = CurveTargets(("cnn_frozen",), {"50": 0.10, "200": 0.10}, {"50": 0.05}, ("50", "1000"))
    text = "\n".join(curve_section(doc, records, Targets("t.yaml", SOURCE, {}, goal)))
    assert (
        "- 50 / class, cnn_frozen: best extracted 0.860 (decontext_finetuned_L1) vs random 0.700: +0.160; "
        "the project's target ≥ +0.10, met." in text
    )
    assert "vs word2vec 0.820: +0.040; the project's target ≥ +0.05, missed by 0.010." in text
    assert "- 50 / class: decontext_finetuned_L1 0.990 vs decontext_base_L1 0.800: +0.190" in text
    assert "- 1000 / class: decontext_finetuned_L1 0.800 vs decontext_base_L1 0.800: +0.000" in text
    assert "the fine-tuned encoder ahead, missed by 0.000." in text  # a tie is not ahead
    assert "200 / class" not in text and "full / class" not in text  # sizes without a target or curve
    assert "target" not in "\n".join(curve_section(doc, records))
