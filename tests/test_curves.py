"""Learning curves: the consumers, the one trainer, nested subsets, the word2vec baseline, the JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from embedforge.core.curves import FULL, CurvePlan, nested_subsets, summarise
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import EvaluateParams, ExtractParams
from embedforge.core.prepared import PreparedData
from embedforge.evaluate.consumers import check_consumers, consumer_scores, predict_net, train_net
from embedforge.evaluate.curves import CurveConfig, run_curve
from embedforge.evaluate.probe import ProbeConfig
from embedforge.extract.run import extract_matrices
from embedforge.nets.data import ProbeData, to_probe_data
from embedforge.nets.training import one_thread

NAMES = ["neg", "pos"]


def _toy(n: int, seed: int) -> ProbeData:
    """Texts of 3-9 words; class 1 texts use words 0-9, class 0 words 10-19 (separable)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = [
        [f"w{rng.integers(0, 10) + (0 if y else 10)}" for _ in range(rng.integers(3, 10))] for y in labels
    ]
    return to_probe_data(texts, labels.tolist(), {f"w{i}": i for i in range(20)})


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():  # as run_curve trains: much faster on a busy machine
        yield


@pytest.fixture(scope="module")
def toy() -> tuple[torch.Tensor, ProbeData, ProbeData]:
    weight = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    return weight, _toy(120, 1), _toy(60, 2)


CFG = ProbeConfig(epochs=2, batch_size=16, lr=1e-2, seed=3, min_steps=20)


@pytest.mark.parametrize("kind", ["mean", "cnn", "bilstm"])
@pytest.mark.parametrize("trainable", [False, True])
def test_each_consumer_learns_a_separable_task(toy: tuple, kind: str, trainable: bool) -> None:
    weight, train, test = toy
    scores = consumer_scores(kind, weight, train, test, NAMES, trainable, CFG, CurveConfig.of(_params()).net)
    assert scores["accuracy"] >= 0.9, scores


@pytest.mark.parametrize("kind", ["cnn", "bilstm"])
def test_a_seeded_net_reproduces_bit_for_bit(toy: tuple, kind: str) -> None:
    weight, train, test = toy
    net = CurveConfig.of(_params()).net
    a, b = (train_net(kind, weight, train, 2, True, CFG, net) for _ in range(2))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert np.array_equal(predict_net(a, test), predict_net(b, test))


def test_cnn_scores_do_not_depend_on_batch_padding(toy: tuple) -> None:
    weight, train, test = toy
    model = train_net("cnn", weight, train, 2, False, CFG, CurveConfig.of(_params()).net)
    rows = torch.arange(10)
    with torch.inference_mode():
        trimmed = model(test.batch(rows))
        padded = model(torch.nn.functional.pad(test.batch(rows), (0, 7), value=test.pad))
    assert torch.allclose(trimmed, padded, atol=1e-6)


def test_nested_subsets_are_nested_and_stratified() -> None:
    labels = np.array([0] * 30 + [1] * 12 + [2] * 5)
    subsets = nested_subsets(labels, [10, 3, 0], seed=7)
    assert list(subsets) == ["3", "10", FULL]
    for n, key in ((3, "3"), (10, "10")):
        counts = np.bincount(labels[subsets[key]], minlength=3)
        assert counts.tolist() == [min(n, c) for c in (30, 12, 5)]
    assert set(subsets["3"]) <= set(subsets["10"]) <= set(subsets[FULL])
    assert len(subsets[FULL]) == len(labels)
    assert not np.array_equal(subsets["3"], nested_subsets(labels, [3], seed=8)["3"])
    assert np.array_equal(subsets["10"], nested_subsets(labels, [10, 3, 0], seed=7)["10"])


def test_plan_runs_each_small_size_per_seed_and_the_full_split_once() -> None:
    plan = CurvePlan.of(np.array([0] * 20 + [1] * 20), [4, 0], seeds=3, seed=0)
    assert [len(plan.runs[k]) for k in ("4", FULL)] == [3, 1]
    assert plan.rows() == {"4": 8, FULL: 40}
    with pytest.raises(EmbedforgeError, match="curves.sizes"):
        CurvePlan.of(np.array([0, 1]), [-1], seeds=1, seed=0)


def test_unknown_consumer_is_an_error() -> None:
    with pytest.raises(EmbedforgeError, match=r"curve_consumers\[1\] = 'svm'"):
        check_consumers(["cnn", "svm"])


def _params(**kw: object) -> EvaluateParams:
    base = dict(curve_consumers=["mean", "cnn"], cnn_filters=8, lstm_hidden=8)
    return EvaluateParams(**{**base, **kw})  # type: ignore[arg-type]


def test_curve_section_is_strict_rounded_json(toy: tuple) -> None:
    weight, train, test = toy
    p = _params(curve_min_steps=5)
    plan = CurvePlan.of(train.labels.numpy(), [5, 0], seeds=2, seed=p.seed)
    curve = run_curve(weight, train, test, NAMES, plan, CurveConfig.of(p))
    assert list(curve) == ["mean_frozen"] + ["cnn_frozen"]
    point = curve["cnn_frozen"]["5"]
    assert set(point) == {"macro_f1", "macro_f1_sd", "accuracy", "accuracy_sd", "runs"}
    assert point["runs"] == 2 and curve["cnn_frozen"][FULL]["runs"] == 1
    text = json.dumps(curve, allow_nan=False)
    assert all(round(v, 4) == v for v in json.loads(text)["cnn_frozen"]["5"].values())
    assert summarise([{"macro_f1": 0.5, "accuracy": 0.6}])["macro_f1_sd"] == 0.0


def test_word2vec_strategy_is_deterministic_with_the_vocabulary_rows(prepared_dir: Path) -> None:
    prepared = PreparedData(prepared_dir)
    words = [*prepared.vocab()["word"].tolist(), "从未出现的词"]
    cfg = ExtractParams(w2v_vector_size=16, w2v_epochs=2, w2v_min_count=1, seed=5)

    def run() -> torch.Tensor:
        (m,) = extract_matrices(None, words, ["word2vec"], cfg, corpus=prepared.sentences("train"))
        assert m.name == "word2vec" and m.wv.words == words and m.wv.dim == 16
        assert m.wv.info["method"].iloc[-1] == "unknown:mean"
        return m.wv.weight

    first = run()
    assert torch.equal(first, run())


def test_word2vec_needs_a_corpus_and_a_width() -> None:
    with pytest.raises(EmbedforgeError, match="needs a corpus"):
        extract_matrices(None, ["a"], ["word2vec"], ExtractParams(w2v_vector_size=4))
    with pytest.raises(EmbedforgeError, match="hidden size"):
        extract_matrices(None, ["a"], ["word2vec"], ExtractParams(), corpus=[[["a"]]])
