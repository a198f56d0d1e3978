"""The recommended matrix: the selection rule, bootstrap intervals, and how the files and report carry it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from embedforge import load_embedding
from embedforge.core.benchmarks import Pair
from embedforge.core.catalog import Catalog, MatrixRecord
from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import EvaluateParams, parse_params
from embedforge.evaluate.files import SIMILARITY_FILE, MetricsDoc, matrix_keys
from embedforge.evaluate.outputs import headline
from embedforge.evaluate.render.report import build_report
from embedforge.evaluate.results import MatrixScores
from embedforge.evaluate.selection import choose, dev_half, held_half, recommend, spearman
from embedforge.evaluate.similarity import word_similarity

WORDS = [f"w{i}" for i in range(120)]
SET = "sel.tsv"


def _pairs(rng: np.random.Generator) -> list[Pair]:
    """60 pairs on lines 1..60, with human scores."""
    return [Pair(WORDS[2 * i], WORDS[2 * i + 1], float(rng.uniform(0, 10)), i + 1) for i in range(60)]


def _matrix(pairs: list[Pair], follow: set[int], rng: np.random.Generator) -> WordVectors:
    """Vectors whose cosine follows the human score on the pairs of lines `follow`, noise elsewhere."""
    weight = torch.zeros(len(WORDS), 2, dtype=torch.float64)
    for p in pairs:
        score = p.score / 10 if p.line in follow else float(rng.uniform(0, 1))
        angle = np.arccos(2 * score - 1) / 2  # cosine between the two rows rises with `score`
        weight[WORDS.index(p.word1)] = torch.tensor([1.0, 0.0])
        weight[WORDS.index(p.word2)] = torch.tensor([np.cos(2 * angle), np.sin(2 * angle)])
    return WordVectors(WORDS, weight.float())


@pytest.fixture(scope="module")
def world() -> dict:
    """Matrices that win on different halves: `decontext_dev` follows the dev half only, `decontext_held`
    the held half only (and more of it), `cls_finetuned` nothing, `vectors_peer` both halves halfway."""
    rng = np.random.default_rng(0)
    pairs = _pairs(rng)
    odd = {p.line for p in pairs if p.line % 2}
    even = {p.line for p in pairs if not p.line % 2}
    matrices = {
        "cls_finetuned": _matrix(pairs, set(), rng),
        "input_finetuned": _matrix(pairs, odd | even, rng),  # a baseline: never recommended
        "decontext_held": _matrix(pairs, even | set(list(odd)[:10]), rng),
        "decontext_dev": _matrix(pairs, odd, rng),
        "vectors_peer": _matrix(pairs, set(list(odd)[:15]) | set(list(even)[:15]), rng),
    }
    records = [MatrixRecord(n, n.split("_")[0], None, None, None, "none", len(WORDS), 2) for n in matrices]
    similarity = {"sel": pairs, "other": pairs[:40]}
    scores = {
        n: MatrixScores({b: word_similarity(wv, ps) for b, ps in similarity.items()}, {}, {})
        for n, wv in matrices.items()
    }
    params = EvaluateParams(similarity_files=["other.tsv", SET], analogy_files=[], selection_set=SET)
    start = time.perf_counter()
    selection = recommend(params, similarity, scores, records, ["an_analogy"])
    seconds = time.perf_counter() - start
    assert selection is not None
    doc = selection.to_dict()
    return {
        "matrices": matrices,
        "records": records,
        "scores": scores,
        "similarity": similarity,
        "doc": doc,
        "seconds": seconds,
    }


def test_halves_are_odd_and_even_line_numbers() -> None:
    pairs = [Pair("a", "b", 1.0, line) for line in (1, 2, 3, 5, 8)]
    assert [p.line for p in dev_half(pairs)] == [1, 3, 5]
    assert [p.line for p in held_half(pairs)] == [2, 8]


def test_rule_picks_the_highest_dev_score_first_on_a_tie() -> None:
    assert choose({"a": 0.1, "b": 0.3, "c": 0.3, "d": None}) == "b"
    assert choose({"a": None}) is None


def test_vectorized_spearman_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, (3, 30)).astype(float), rng.normal(size=(3, 30))  # ties in x
    expected = [stats.spearmanr(a, b)[0] for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(spearman(x, y), expected)


def test_selection_sees_only_the_dev_half(world: dict) -> None:
    doc = world["doc"]
    full = {n: s.similarity["sel"].spearman for n, s in world["scores"].items()}
    assert max(full, key=full.__getitem__) != "decontext_dev"  # the full set would pick another matrix
    assert doc["recommended"] == "decontext_dev"  # the dev half picks this one; baselines never compete
    sel = doc["selection"]
    assert set(sel["dev"]) == {"decontext_held", "decontext_dev", "vectors_peer"}
    assert sel["seen"] == ["sel:dev"] and sel["held_out"] == ["sel:held", "other", "an_analogy"]
    assert list(sel["matrices"]) == ["decontext_dev", "cls_finetuned", "vectors_peer"]


def test_intervals_are_seeded_paired_and_fast(world: dict) -> None:
    sel = world["doc"]["selection"]
    for name, by_set in sel["matrices"].items():
        assert set(by_set) == {"sel", "sel:dev", "sel:held", "other"}
        for s, r in by_set.items():
            assert r["low"] <= r["spearman"] <= r["high"], (name, s)
        assert by_set["sel"]["coverage"] == 1.0 and by_set["sel"]["pairs"] == 60
        metrics = world["scores"][name].similarity["sel"].metrics()  # what similarity.json says
        assert by_set["sel"]["spearman"] == pytest.approx(metrics["spearman"], abs=1e-3)
    best, cls = sel["matrices"]["decontext_dev"], sel["matrices"]["cls_finetuned"]
    assert best["sel:dev"]["spearman"] == pytest.approx(1.0)
    diff = sel["difference"]["sel"]
    assert diff["difference"] == pytest.approx(best["sel"]["spearman"] - cls["sel"]["spearman"], abs=2e-4)
    assert diff["low"] <= diff["difference"] <= diff["high"] and diff["pairs"] == 60
    again = recommend(
        EvaluateParams(similarity_files=["other.tsv", SET], analogy_files=[], selection_set=SET),
        {"sel": _pairs(np.random.default_rng(0)), "other": _pairs(np.random.default_rng(0))[:40]},
        world["scores"],
        world["records"],
        ["an_analogy"],
    )
    assert again is not None and again.to_dict() == world["doc"]  # the same seed: the same intervals
    assert world["seconds"] < 5


def test_files_report_and_load_embedding_carry_the_recommended_matrix(world: dict, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "embeddings")
    for name, wv in world["matrices"].items():
        wv.save(catalog.path(name))
    similarity = {n: s.metrics() for n, s in world["scores"].items()} | world["doc"]
    path = tmp_path / SIMILARITY_FILE
    path.write_text(json.dumps(similarity, sort_keys=True), encoding="utf-8")
    doc = MetricsDoc.read(path)
    assert matrix_keys(doc) == sorted(world["matrices"])
    embedding, vocab = load_embedding(catalog.path(doc.data["recommended"]))
    assert torch.equal(embedding.weight[: len(WORDS)], world["matrices"]["decontext_dev"].weight)

    classification = MetricsDoc.of({"probe": {}}, "classification.json")
    report = build_report(doc, classification, world["records"])
    assert report.startswith("# Evaluation report\n\n## Which matrix to use\n\n**decontext_dev** (120 words")
    assert "The rule saw sel:dev; held out: sel:held, other, an_analogy." in report
    header = "| benchmark | decontext_dev (recommended) | cls_finetuned (tutorial) | difference (paired) |"
    assert f"{header} vectors_peer |" in report  # no target applies: no target column
    sel = world["doc"]["selection"]
    best, diff = sel["matrices"]["decontext_dev"]["sel:dev"], sel["difference"]["sel:dev"]
    row = next(line for line in report.splitlines() if line.startswith("| sel:dev ρ |"))
    assert row.split(" | ")[1] == f"{best['spearman']:.3f} [{best['low']:.3f}, {best['high']:.3f}]"
    assert row.split(" | ")[3].startswith(f"{diff['difference']:+.3f} [")
    assert "| selection |" not in report and "| dev ρ |" not in report  # the record is no matrix nor set
    assert not doc.missing

    documents = {
        SIMILARITY_FILE: similarity,
        "classification.json": {"finetuned": {"accuracy": 0.5, "macro_f1": 0.5}, "probe": {}},
    }
    head = headline(documents)
    assert head["recommended"] == {b: r["spearman"] for b, r in similarity["decontext_dev"].items()}


def test_selection_set_must_be_a_similarity_file() -> None:
    with pytest.raises(EmbedforgeError, match="evaluate.selection_set = 'x.tsv' is not one of"):
        parse_params({"evaluate": {"selection_set": "x.tsv"}})
    # null follows the language profile when the similarity files hold its set, else selects nothing
    zh = "data/benchmarks/wordsim/zh/multisimlex_zh.tsv"
    assert parse_params({"evaluate": {"selection_set": None}}).evaluate.selection_set == zh
    own = {"similarity_files": ["a.tsv"], "selection_set": None}
    assert parse_params({"evaluate": own}).evaluate.selection_set is None
    none = EvaluateParams(selection_set=None)
    assert recommend(none, {}, {}, []) is None
