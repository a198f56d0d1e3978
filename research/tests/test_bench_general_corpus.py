"""bench/general_corpus.py: the People's Daily tagged lines become plain sentences; blends are centered."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

from embedforge.core.embedding import WordVectors

ROOT = Path(__file__).resolve().parents[1]
BENCH = runpy.run_path(str(ROOT / "bench" / "general_corpus.py"))  # the functions, without running main


def test_tags_and_brackets_are_stripped_and_sentences_split() -> None:
    line = "[中央/nt  人民/n]nt  迈向/v  新/a  世纪/n  。/w  好/a  吗/y  ？/w  完/v"
    assert BENCH["plain_words"](line) == ["中央", "人民", "迈向", "新", "世纪", "。", "好", "吗", "？", "完"]
    expected = ["中央人民迈向新世纪。", "好吗？", "完", "１２月！"]
    assert BENCH["sentences"](line + "\n\n１２月/t  ！/w") == expected


def test_blend_is_the_centered_mean_or_concat_of_unit_centered_parts() -> None:
    words = ["a", "b", "c"]
    x = WordVectors(words, torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]))
    y = WordVectors(words, torch.tensor([[0.0, 1.0], [5.0, 0.0], [1.0, 1.0]]))
    mean, concat = BENCH["blend"]([x, y], "mean"), BENCH["blend"]([x, y], "concat")
    assert mean.weight.shape == (3, 2) and concat.weight.shape == (3, 4)
    for wv in (mean, concat):
        assert torch.allclose(wv.weight.mean(0), torch.zeros(wv.dim), atol=1e-6)
    same = BENCH["blend"]([x, x], "mean")
    assert torch.allclose(same.weight, BENCH["blend"]([x], "mean").weight, atol=1e-6)
