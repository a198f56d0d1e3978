"""Intrinsic evaluation: benchmark readers, similarity, analogy, neighbours, classification metrics, probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedforge.core.benchmarks import benchmark_words, read_analogies, read_pairs, read_word_list
from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import classification_metrics
from embedforge.core.params import EvaluateParams
from embedforge.evaluate.classification import confusion_matrix
from embedforge.evaluate.probe import ProbeConfig, random_matrix, run_probe
from embedforge.evaluate.similarity import (
    analogy_accuracy,
    genuine_rows,
    nearest_neighbours,
    row_counts,
    word_similarity,
)
from embedforge.nets.data import to_probe_data

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def angles() -> WordVectors:
    """Unit vectors at known angles: cos(a, b_k) decreases with k; `z` is orthogonal to all."""
    theta = [0.0, 0.2, 0.5, 0.9, 1.4]
    words = ["a", "b1", "b2", "b3", "b4"]
    weight = torch.tensor([[np.cos(t), np.sin(t), 0.0] for t in theta], dtype=torch.float32)
    return WordVectors(words + ["z"], torch.cat([weight, torch.tensor([[0.0, 0.0, 1.0]])]))


def test_read_pairs_parses_and_skips_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.tsv", "Big\tlarge\t9.5\n\nsmall\tTiny\t8\r\n")
    pairs = read_pairs(path, lowercase=True)
    assert [(p.word1, p.word2, p.score, p.line) for p in pairs] == [
        ("big", "large", 9.5, 1),
        ("small", "tiny", 8.0, 3),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\tb\t1\na b 2\n", "s.tsv line 2: expected word1<TAB>word2<TAB>score, got 1 field$"),
        ("a\tb\t1\nc\td\thigh\n", r"s.tsv line 2: the score \(field 3\) is not a finite number"),
        ("a\tb\tnan\n", r"s.tsv line 1: the score \(field 3\) is not a finite number"),
        ("\n\n", "s.tsv: no word pairs found"),
    ],
)
def test_read_pairs_bad_rows_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(EmbedforgeError, match=message) as err:
        read_pairs(_write(tmp_path / "s.tsv", text))
    assert "\n" not in str(err.value)


def test_read_analogies(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.txt", ": capitals\n雅典 希腊 北京 中国\n: family\n男孩 女孩 兄弟 姐妹\n")
    questions = read_analogies(path)
    assert [(q.a, q.d, q.section) for q in questions] == [
        ("雅典", "中国", "capitals"),
        ("男孩", "姐妹", "family"),
    ]
    with pytest.raises(EmbedforgeError, match="a.txt line 2: expected four words"):
        read_analogies(_write(tmp_path / "a.txt", ": s\n雅典 希腊 北京\n"))


def test_default_benchmarks_are_committed_and_parse() -> None:
    p = EvaluateParams()
    counts = [len(read_pairs(ROOT / f)) for f in p.similarity_files]
    assert counts == [240, 297, 1888]
    assert len(read_analogies(ROOT / p.analogy_files[0])) == 953
    for folder in {Path(f).parent for f in [*p.similarity_files, *p.analogy_files]}:
        assert (ROOT / folder / "SOURCE.md").is_file()


def test_word_similarity_correlation_coverage_and_oov(angles: WordVectors, tmp_path: Path) -> None:
    # Human scores fall as the angle grows, so the ranking agrees perfectly; one pair has an OOV word.
    text = "a\tb1\t9\na\tb2\t7\na\tb3\t4\na\tb4\t1\na\tmissing\t5\n"
    result = word_similarity(angles, read_pairs(_write(tmp_path / "s.tsv", text)))
    assert result.spearman == pytest.approx(1.0)
    assert 0.9 < result.pearson <= 1.0
    assert (result.used, result.total, result.coverage) == (4, 5, 0.8)
    assert result.oov == ["missing"]
    assert result.metrics() == {
        "spearman": 1.0,
        "pearson": round(result.pearson, 4),
        "coverage": 0.8,
        "genuine_coverage": 0.8,  # a matrix without a `method` column: every row is genuine
    }
    assert list(result.scores.columns) == ["word1", "word2", "human", "cosine"]


def test_word_similarity_with_no_pair_in_vocabulary_reports_zero_coverage(
    angles: WordVectors, tmp_path: Path
) -> None:
    result = word_similarity(angles, read_pairs(_write(tmp_path / "s.tsv", "x\ty\t1\nu\tv\t2\n")))
    assert result.metrics() == {"spearman": None, "pearson": None, "coverage": 0.0, "genuine_coverage": 0.0}
    assert result.oov == ["u", "v", "x", "y"]
    assert result.scores.empty


def test_word_similarity_constant_scores_give_null_not_nan(angles: WordVectors, tmp_path: Path) -> None:
    text = "a\tb1\t5\na\tb2\t5\na\tb3\t5\n"
    assert word_similarity(angles, read_pairs(_write(tmp_path / "s.tsv", text))).spearman is None


def test_analogy_3cosadd_excludes_question_words_and_counts_coverage(tmp_path: Path) -> None:
    # king - man + woman lands exactly on queen; `king` itself would score higher but is excluded.
    vectors = {
        "man": [1, 0, 0, 0],
        "woman": [1, 1, 0, 0],
        "king": [1, 0, 1, 0],
        "queen": [1, 1, 1, 0],
        "apple": [0, 0, 0, 1],
    }
    wv = WordVectors(list(vectors), torch.tensor(list(vectors.values()), dtype=torch.float32))
    text = ": royal\nman king woman queen\nman king woman apple\nman king woman unicorn\n"
    result = analogy_accuracy(wv, read_analogies(_write(tmp_path / "a.txt", text)), chunk=1)
    assert (result.correct, result.used, result.total) == (1, 2, 3)
    assert result.metrics() == {
        "accuracy": 0.5,
        "coverage": round(2 / 3, 4),
        "genuine_coverage": round(2 / 3, 4),
    }
    assert result.oov == ["unicorn"]


def test_analogy_with_nothing_covered_is_null(angles: WordVectors, tmp_path: Path) -> None:
    result = analogy_accuracy(angles, read_analogies(_write(tmp_path / "a.txt", "p q r s\n")))
    assert result.metrics() == {"accuracy": None, "coverage": 0.0, "genuine_coverage": 0.0}


def test_nearest_neighbours_exclude_the_word_itself(angles: WordVectors) -> None:
    found = nearest_neighbours(angles, ["a", "nope"], k=2)
    assert [w for w, _ in found["a"]] == ["b1", "b2"]
    assert found["a"][0][1] == pytest.approx(np.cos(0.2), abs=1e-3)
    assert found["nope"] is None


def test_classification_metrics_per_class_and_zero_division() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 1])
    m = classification_metrics(y_true, y_pred, ["neg", "pos", "mid"])
    assert m["accuracy"] == round(4 / 6, 4)
    assert m["per_class"]["neg"] == {"precision": 1.0, "recall": round(2 / 3, 4), "f1": 0.8, "support": 3}
    assert m["per_class"]["pos"]["precision"] == 0.5
    assert m["per_class"]["mid"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["macro_f1"] == round((0.8 + round(2 * 0.5 / 1.5, 6) + 0.0) / 3, 4)
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]


def _sentiment_task(seed: int, n: int) -> tuple[list[list[str]], list[int]]:
    """Texts of filler words plus one `good`/`bad` word that decides the label."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        words = [f"w{i}" for i in rng.integers(0, 30, size=5)] + [("good", "bad")[label]]
        texts.append(list(rng.permutation(words)))
        labels.append(label)
    return texts, labels


def test_probe_learns_is_deterministic_and_handles_empty_texts() -> None:
    words = ["good", "bad", *(f"w{i}" for i in range(30))]
    weight = torch.randn(len(words), 8, generator=torch.Generator().manual_seed(1))
    weight[0, 0], weight[1, 0] = 5.0, -5.0  # one direction carries the sentiment
    index = {w: i for i, w in enumerate(words)}
    train = to_probe_data(*_sentiment_task(0, 400), index)
    test_texts, test_labels = _sentiment_task(1, 100)
    test = to_probe_data([*test_texts, ["unknown"]], [*test_labels, 0], index)  # a text with no known word
    cfg = ProbeConfig(epochs=3, batch_size=32, lr=1e-2, seed=3)
    first = run_probe(weight, train, test, ["neg", "pos"], cfg)
    assert first == run_probe(weight, train, test, ["neg", "pos"], cfg)
    assert first.frozen["accuracy"] > 0.85
    assert first.trainable["accuracy"] > 0.85
    assert first.metrics().keys() == {"frozen", "trainable"}
    assert first.metrics()["frozen"].keys() == {"accuracy", "macro_f1"}


def test_random_matrix_matches_shape_and_scale_and_is_seeded() -> None:
    like = torch.randn(200, 16) * 3 + 1
    noise = random_matrix(like, seed=5)
    assert noise.shape == like.shape
    assert float(noise.std()) == pytest.approx(float(like.std()), rel=0.05)
    assert torch.equal(noise, random_matrix(like, seed=5))
    assert not torch.equal(noise, random_matrix(like, seed=6))


def test_genuine_coverage_counts_only_rows_the_strategy_made(angles: WordVectors, tmp_path: Path) -> None:
    """`coverage` keeps counting every row; `genuine_coverage` only pairs whose two rows are genuine."""
    import pandas as pd

    method = ["aggregate", "fallback:decontext", "aggregate", "empty", "aggregate", "unknown:mean"]
    wv = WordVectors(angles.words, angles.weight, pd.DataFrame({"method": method}))
    assert genuine_rows(wv) == [True, False, True, False, True, False]
    assert row_counts(wv) == {"total": 6, "genuine": 3}
    pairs = read_pairs(_write(tmp_path / "s.tsv", "a\tb1\t9\na\tb2\t7\na\tb3\t4\na\tb4\t1\na\tmissing\t5\n"))
    metrics = word_similarity(wv, pairs).metrics()
    assert (metrics["coverage"], metrics["genuine_coverage"]) == (0.8, 0.4)  # a-b2, a-b4 of 5 pairs
    questions = read_analogies(_write(tmp_path / "a.txt", "a b2 b4 b1\na b2 b4 z\n"))
    assert analogy_accuracy(wv, questions).metrics()["genuine_coverage"] == 0.0  # b1 and z are stand-ins


def test_chinese_labels_render_with_the_bundled_font_and_no_glyph_warning(tmp_path: Path) -> None:
    import warnings

    import matplotlib.pyplot as plt

    from embedforge.evaluate.render.plots import CJK_FONT, confusion_png

    assert CJK_FONT.is_file() and (CJK_FONT.parent / "OFL.txt").is_file()
    names = ["书籍", "平板", "手机", "洗发水", "热水器"]  # online_shopping_10_cats classes
    counts = np.arange(25).reshape(5, 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        confusion_png(counts, names, tmp_path / "c.png")
    assert not [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert (tmp_path / "c.png").stat().st_size > 0
    # the check can fail: the same labels in matplotlib's default font alone warn about each glyph
    with warnings.catch_warnings(record=True) as caught, plt.rc_context({"font.family": ["DejaVu Sans"]}):
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title("手机")
        fig.savefig(tmp_path / "plain.png")
        plt.close(fig)
    assert any("missing from font" in str(w.message) for w in caught)


PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (read_pairs, "line 1: expected word1<TAB>word2<TAB>score, got 1 field"),
        (read_analogies, "line 1: expected four words 'a b c d', got 1 word"),
        (benchmark_words, None),  # read as a word list: one "word" per line, nothing to refuse
    ],
)
def test_a_file_of_another_kind_is_never_echoed(tmp_path: Path, read, message) -> None:
    path = _write(tmp_path / "passwd", PASSWD)
    if message is None:
        assert len(read(path)) == 2
        return
    with pytest.raises(EmbedforgeError) as err:
        read(path)
    assert str(err.value) == f"{path} {message}"
    assert "root" not in str(err.value).replace(str(tmp_path), "")
    with pytest.raises(EmbedforgeError) as err:
        read(_write(tmp_path / "spaced", "root x 0 0 root /root /bin/bash\n"))
    assert "/bin/bash" not in str(err.value)


def test_a_word_list_row_of_several_words_is_counted_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(EmbedforgeError) as err:
        read_word_list(_write(tmp_path / "w.txt", "好吃\nroot x 0 0 /bin/bash\n"))
    assert str(err.value) == f"{tmp_path / 'w.txt'} line 2: expected one word per line, got 5 words"
