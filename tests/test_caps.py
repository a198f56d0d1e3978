"""evaluate.max_train_rows / max_test_rows: probes and curves on seeded, stratified samples, recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import parse_params
from embedforge.evaluate.caps import RowCaps, stratified_rows
from embedforge.evaluate.files import CLASSIFICATION_FILE, SIMILARITY_FILE, MetricsDoc
from embedforge.evaluate.render.report import build_report


def test_a_cap_is_a_seeded_stratified_sample_of_exactly_that_many_rows() -> None:
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    rows = stratified_rows(labels, 30, seed=1)
    assert rows is not None and len(rows) == 30 and list(rows) == sorted(set(rows))
    assert np.bincount(labels[rows]).tolist() == [21, 6, 3]  # each class in proportion
    assert np.array_equal(rows, stratified_rows(labels, 30, seed=1))
    assert not np.array_equal(rows, stratified_rows(labels, 30, seed=2))


@pytest.mark.parametrize("cap", [0, 100, 1000])
def test_no_cap_or_a_cap_at_or_above_the_split_keeps_every_row(cap: int) -> None:
    assert stratified_rows(np.array([0, 1] * 50), cap, seed=0) is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_train_rows", -1, "evaluate.max_train_rows = -1 is out of range"),
        ("max_test_rows", "10", "evaluate.max_test_rows = '10' is not valid; expected an integer"),
    ],
)
def test_bad_caps_are_one_line_errors(key: str, value: object, message: str) -> None:
    with pytest.raises(EmbedforgeError, match=message):
        parse_params({"evaluate": {key: value}})


def test_a_cap_below_the_class_count_is_an_error() -> None:
    p = parse_params({"evaluate": {"max_test_rows": 1}}).evaluate
    labels = {"train": np.array([0, 1, 2] * 5), "test": np.array([0, 1, 2] * 2)}
    with pytest.raises(EmbedforgeError, match=r"evaluate.max_test_rows = 1 is below the 3 classes"):
        RowCaps.of(p, labels)


def test_the_committed_params_cap_nothing() -> None:
    p = parse_params({})
    assert (p.evaluate.max_train_rows, p.evaluate.max_test_rows) == (0, 0)


def test_report_of_an_uncapped_run_says_nothing_about_caps(tmp_path: Path) -> None:
    doc = MetricsDoc.of({"finetuned": {}, "probe": {}}, CLASSIFICATION_FILE)
    assert "Capped run" not in build_report(MetricsDoc.of({}, SIMILARITY_FILE), doc, [])
