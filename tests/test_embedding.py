"""WordVectors and the public API: save/load, load_embedding, unknown-word policies, exports."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import embedforge
from embedforge.core.embedding import WordVectors, load_embedding
from embedforge.core.errors import EmbedforgeError

WORDS = ["好吃", "味道", "外卖"]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    weight = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 2.0, 5.0]])
    info = pd.DataFrame({"count": [5, 3, 2], "method": ["aggregate"] * 3, "contexts": [5, 3, 2]})
    return WordVectors(WORDS, weight, info).save(tmp_path / "m")


def test_package_exports_public_api() -> None:
    assert embedforge.load_embedding is load_embedding and embedforge.WordVectors is WordVectors
    with pytest.raises(AttributeError):
        embedforge.nothing  # noqa: B018


def test_save_load_round_trip(saved: Path) -> None:
    wv = WordVectors.load(saved.with_name("m.safetensors"))
    assert wv.words == WORDS and wv.dim == 3 and wv.weight.dtype == torch.float32
    assert wv.info["count"].tolist() == [5, 3, 2]


@pytest.mark.parametrize(
    ("unknown", "expected"),
    [("zeros", [0.0, 0.0, 0.0]), ("mean", [2.0, 2.0, 3.0])],
)
def test_load_embedding_shape_lookup_and_unknown_row(
    saved: Path, unknown: str, expected: list[float]
) -> None:
    emb, vocab = load_embedding(saved, unknown=unknown)
    assert isinstance(emb, torch.nn.Embedding) and tuple(emb.weight.shape) == (4, 3)
    assert not emb.weight.requires_grad
    ids = vocab.lookup(["味道", "没见过", "好吃"])
    assert ids.tolist() == [1, vocab.unk_index, 0] and vocab.unk_index == 3
    assert int(vocab.lookup("外卖")) == 2
    assert emb(ids)[0].tolist() == [3.0, 2.0, 1.0]
    assert emb(ids)[1].tolist() == expected


def test_random_policy_is_seeded_per_word(saved: Path) -> None:
    wv = WordVectors.load(saved)
    a = wv.unknown_vectors(["甲", "乙"], "random", seed=1)
    b = wv.unknown_vectors(["乙"], "random", seed=1)
    torch.testing.assert_close(a[1], b[0])  # independent of the other words asked
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(wv.unknown_vectors(["乙"], "random", seed=2), b)


def test_added_words_get_rows_by_policy(saved: Path) -> None:
    emb, vocab = load_embedding(saved, unknown="zeros", words=["好吃", "新词"], freeze=False)
    assert vocab.words == [*WORDS, "新词"] and tuple(emb.weight.shape) == (5, 3)
    assert emb.weight.requires_grad
    assert emb(vocab.lookup(["新词"])).abs().sum() == 0
    assert vocab.info["method"].tolist()[-1] == "unknown:zeros"


def test_subword_policy_composes_from_input_table(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    net, tok = AutoModel.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    WordVectors(["好吃"], torch.zeros(1, 32)).save(tmp_path / "m")
    emb, vocab = load_embedding(tmp_path / "m", unknown="subword", words=["味道"], model_dir=tiny_model_dir)
    pieces = tok("味道", add_special_tokens=False)["input_ids"]
    expected = net.get_input_embeddings().weight[pieces].mean(0)
    torch.testing.assert_close(emb(vocab.lookup(["味道"]))[0], expected.detach())
    with pytest.raises(EmbedforgeError, match="needs model_dir"):
        load_embedding(tmp_path / "m", unknown="subword")


def test_word2vec_text_round_trip_and_format(saved: Path, tmp_path: Path) -> None:
    wv = WordVectors.load(saved)
    path = wv.save_word2vec(tmp_path / "m.w2v.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "3 3" and lines[1] == "好吃 1 2 3"
    back = WordVectors.load_word2vec(path, keep={"外卖", "好吃"})
    assert back.words == ["好吃", "外卖"]
    torch.testing.assert_close(back.weight, wv.weight[[0, 2]])


def test_word2vec_binary_reader(tmp_path: Path) -> None:
    path = tmp_path / "v.bin"
    rows = {"好吃": [1.0, -2.0], "味道": [0.5, 4.0]}
    with path.open("wb") as fh:
        fh.write(b"2 2\n")
        for word, vec in rows.items():
            fh.write(word.encode() + b" " + struct.pack("<2f", *vec) + b"\n")
    wv = WordVectors.load_word2vec(path)
    assert wv.words == list(rows)
    np.testing.assert_allclose(wv.weight.numpy(), np.array(list(rows.values())))


def test_word2vec_bad_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("2 3\n好吃 1 2\n", encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=r"bad.txt line 2: expected a word and 3 numbers"):
        WordVectors.load_word2vec(tmp_path / "bad.txt")
    (tmp_path / "nohead.txt").write_text("好吃 1 2\n", encoding="utf-8")
    with pytest.raises(EmbedforgeError, match="line 1: expected a word2vec header"):
        WordVectors.load_word2vec(tmp_path / "nohead.txt")


def test_projector_pair(saved: Path, tmp_path: Path) -> None:
    vec, meta = WordVectors.load(saved).save_projector(tmp_path / "p")
    assert vec.read_text(encoding="utf-8").splitlines()[0] == "1\t2\t3"
    meta_lines = meta.read_text(encoding="utf-8").splitlines()
    assert meta_lines[0] == "word\tcount\tmethod\tcontexts" and meta_lines[1].startswith("好吃\t5\t")
    assert len(meta_lines) == 4


def test_word2vec_text_with_a_non_number_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("2 3\n好吃 0.1 0.2 0.3\n外卖 0.1 oops 0.3\n", encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=r"bad.txt line 3: expected a word and 3 numbers"):
        WordVectors.load_word2vec(path)


def test_similarity_and_most_similar_use_cosine(saved: Path) -> None:
    wv = WordVectors.load(saved)
    unit = torch.nn.functional.normalize(wv.weight, dim=1)
    assert wv.similarity("好吃", "外卖") == pytest.approx(float(unit[0] @ unit[2]))
    ranked = wv.most_similar("好吃", topn=5)
    assert [w for w, _ in ranked] == ["外卖", "味道"]  # itself excluded, nearest first, topn capped
    assert ranked[0][1] == pytest.approx(float(unit[0] @ unit[2]))
    assert wv.most_similar(torch.tensor([3.0, 2.0, 1.0]), topn=1)[0][0] == "味道"
    with pytest.raises(KeyError, match="not in the vocabulary"):
        wv.similarity("好吃", "没有")


def test_unit_rows_are_cached_until_the_weight_changes(saved: Path) -> None:
    wv = WordVectors.load(saved)
    assert wv.unit is wv.unit
    wv.weight = wv.weight * 2 + 1
    assert torch.allclose(wv.unit, torch.nn.functional.normalize(wv.weight, dim=1))


def test_load_embedding_padding_row_for_padding_idx(saved: Path) -> None:
    emb, vocab = load_embedding(saved, padding=True)
    assert vocab.pad_index == len(WORDS) + 1 == emb.padding_idx
    assert torch.equal(emb.weight[vocab.pad_index], torch.zeros(3))
    plain, plain_vocab = load_embedding(saved)
    assert plain_vocab.pad_index is None and plain.padding_idx is None
    assert plain.weight.shape[0] == emb.weight.shape[0] - 1


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_a_damaged_matrix_file_is_one_line_naming_it(saved: Path, damage: str) -> None:
    path = saved.with_name("m.safetensors")
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\x00" * 64}[damage])
    for load in (WordVectors.load, load_embedding):
        with pytest.raises(EmbedforgeError) as err:
            load(saved)
        assert str(err.value).startswith(f"{path}: truncated or corrupt safetensors file (")
        assert str(err.value).endswith("); expected the matrix `extract` wrote (rerun it)")
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("weight", "shown"),
    [
        (torch.zeros(2, 3), "float32 of shape [2, 3]"),  # a row short of the 3 words
        (torch.zeros(3, 3, 1), "float32 of shape [3, 3, 1]"),
        (torch.zeros(3, 0), "float32 of shape [3, 0]"),
        (torch.zeros(3, 3, dtype=torch.int64), "int64 of shape [3, 3]"),
    ],
)
def test_a_wrong_shape_matrix_is_one_line(saved: Path, weight: torch.Tensor, shown: str) -> None:
    from safetensors.torch import save_file

    path = saved.with_name("m.safetensors")
    save_file({"weight": weight}, str(path))
    with pytest.raises(EmbedforgeError) as err:
        load_embedding(saved)
    assert str(err.value) == (
        f"{path}: tensor 'weight' is {shown}; expected a float matrix [3, d] (one row per word of the "
        ".vocab.parquet file)"
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_matrix_with_non_finite_values_is_refused(saved: Path, bad: float) -> None:
    from safetensors.torch import save_file

    path = saved.with_name("m.safetensors")
    weight = torch.ones(3, 3)
    weight[1, 2] = bad
    save_file({"weight": weight}, str(path))
    with pytest.raises(EmbedforgeError) as err:
        WordVectors.load(saved)
    assert (
        str(err.value)
        == f"{path}: 1 of 3 rows hold NaN or infinite values (first: row 1); expected finite numbers"
    )
    save_file({"weight": torch.full((3, 3), float("nan"))}, str(path))
    with pytest.raises(EmbedforgeError, match=r"3 of 3 rows hold NaN or infinite values \(first: row 0\)"):
        load_embedding(saved)


def test_a_truncated_vocabulary_file_is_one_line(saved: Path) -> None:
    vocab = saved.with_name("m.vocab.parquet")
    vocab.write_bytes(vocab.read_bytes()[:20])
    with pytest.raises(EmbedforgeError) as err:
        WordVectors.load(saved)
    assert str(err.value).startswith(f"{vocab}: cannot read as Parquet")
    assert "\n" not in str(err.value)
