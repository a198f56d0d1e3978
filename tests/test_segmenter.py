"""The word segmenter inside `tokenizers`: forward maximum matching, punctuation, English, unknown characters,
long runs, ids, save/load, bad word lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, normalizers

from embedforge.core.errors import EmbedforgeError
from embedforge.core.segmenter import UNK, WordSegmenter
from embedforge.core.text import segment_text

TINY = ["外卖", "很", "好吃", "好"]


def test_forward_maximum_matching_takes_the_longest_word_first() -> None:
    seg = WordSegmenter.build(TINY, "zh")
    assert seg.segment(["外卖很好吃"]) == [["外卖", "很", "好吃"]]
    # greedy, left to right: FMM's known mistake on 研究生命 (研究生 / 命), not jieba's 研究 / 生命
    fmm = WordSegmenter.build(["研究", "研究生", "生命", "起源"], "zh")
    assert fmm.segment(["研究生命起源"]) == [["研究生", "命", "起源"]]


def test_punctuation_and_whitespace_split_and_punctuation_is_kept_normalised() -> None:
    seg = WordSegmenter.build(TINY, "zh")
    assert seg.segment(["外卖，很好吃！！", " 外卖 很  好吃 "]) == [
        ["外卖", ",", "很", "好吃", "!", "!"],  # NFKC: full-width punctuation becomes ASCII
        ["外卖", "很", "好吃"],  # pre-segmented text gives the same words
    ]


def test_unknown_characters_come_out_alone_as_themselves_and_do_not_hide_their_run() -> None:
    seg = WordSegmenter.build(TINY, "zh")
    assert seg.segment(["外卖火星好吃"]) == [["外卖", "火", "星", "好吃"]]
    ids = seg.encode(["外卖火星好吃"])[0].ids
    unk = seg.tokenizer.token_to_id(UNK)
    assert ids == [0, unk, unk, 2]  # [UNK] in the tokenizer (model2vec drops it), the words still found


def test_a_character_used_only_inside_words_is_an_entry_so_its_run_still_matches() -> None:
    seg = WordSegmenter.build(["送餐", "很快"], "zh")
    vocab = seg.tokenizer.get_vocab()
    assert [vocab[w] for w in ["送餐", "很快"]] == [0, 1]  # the words' ids are their rows
    assert set(vocab) == {"送餐", "很快", "送", "餐", "很", "快", UNK}
    assert seg.segment(["餐很送餐快"]) == [["餐", "很", "送餐", "快"]]
    assert UNK not in seg.encode(["餐很送餐快"])[0].tokens


def test_latin_letters_and_digits_inside_chinese_text() -> None:
    seg = WordSegmenter.build([*TINY, "ok", "20"], "zh")
    assert seg.segment(["OK外卖20分钟很好吃"]) == [["ok", "外卖", "20", "分", "钟", "很", "好吃"]]


def test_english_words_are_matched_whole_as_core_text_splits_them() -> None:
    seg = WordSegmenter.build(["don't", "good", "ness", "food"], "en")
    text = "Don't say GOOD-ness; goodness, food_court!"
    assert seg.segment([text]) == [segment_text(text, "en")]
    assert seg.segment(["goodness"]) == [["goodness"]]  # never good + ness
    assert seg.encode(["goodness"])[0].tokens == [UNK]


def test_a_run_longer_than_max_run_is_cut_not_lost() -> None:
    seg = WordSegmenter.build(TINY, "zh", max_run=3)
    assert seg.segment(["外卖很好吃"]) == [["外卖", "很", "好吃"]]  # cut after 外卖很
    assert seg.segment(["很很外卖"]) == [["很", "很", "外", "卖"]]  # 外卖 straddles the cut


def test_batched_segmentation_equals_one_text_at_a_time() -> None:
    seg = WordSegmenter.build(TINY, "zh")
    texts = ["外卖很好吃", "", "好！", "外卖 外卖", "Ｇｏｏｄ外卖", "\ufeff外卖"] * 50
    assert seg.segment(texts) == [seg.segment([t])[0] for t in texts]
    assert seg.segment([""]) == [[]]
    assert seg.segment(["\ufeff外卖\t很\n"]) == [["外卖", "很"]]  # BOM and whitespace as core.text drops them


def test_upper_case_words_keep_case_matching() -> None:
    seg = WordSegmenter.build(["iPhone", "外卖"], "zh")
    assert seg.segment(["iPhone外卖"]) == [["iPhone", "外卖"]]
    assert seg.segment(["iphone"]) == [["iphone"]]  # no Lowercase normalizer: an unknown piece


def test_save_and_load_round_trip_as_one_tokenizer_json(tmp_path: Path) -> None:
    seg = WordSegmenter.build([*TINY, "good"], "zh")
    path = seg.save(tmp_path / "tokenizer.json")
    assert path == tmp_path / "tokenizer.json" and [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]
    loaded = WordSegmenter.load(path)
    texts = ["外卖很好吃，GOOD！", "火星外卖"]
    assert loaded.segment(texts) == seg.segment(texts)
    assert loaded.tokenizer.get_vocab() == seg.tokenizer.get_vocab()
    plain = Tokenizer.from_file(str(path))  # what model2vec and sentence-transformers load
    assert plain.encode("外卖很好吃", add_special_tokens=False).tokens == ["外卖", "很", "好吃"]


def test_load_refuses_a_missing_file_and_a_tokenizer_of_another_kind(tmp_path: Path) -> None:
    with pytest.raises(EmbedforgeError, match=r"no such tokenizer file"):
        WordSegmenter.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=r"bad\.json: not a tokenizers tokenizer\.json"):
        WordSegmenter.load(tmp_path / "bad.json")
    other = WordSegmenter.build(TINY, "zh").tokenizer
    other.normalizer = normalizers.NFD()
    other.save(str(tmp_path / "nfd.json"))
    with pytest.raises(EmbedforgeError, match=r"normalizer is \['NFD'\]; expected"):
        WordSegmenter.load(tmp_path / "nfd.json")


@pytest.mark.parametrize(
    ("words", "language", "message"),
    [
        ([], "zh", "the word list is empty"),
        (["好", "好"], "zh", r"word 1 \('好'\) is a repeat"),
        (["好", ""], "zh", r"word 1 \(''\) is empty"),
        ([UNK], "zh", r"word 0 \('\[UNK\]'\) is the unknown token"),
        (["好"], "ja", r"unknown language 'ja'; expected one of zh, en"),
    ],
)
def test_a_bad_word_list_is_one_line_naming_the_word(words: list[str], language: str, message: str) -> None:
    with pytest.raises(EmbedforgeError, match=message):
        WordSegmenter.build(words, language)


def test_a_large_sparse_character_set_compiles_as_ranges() -> None:
    words = [chr(c) + chr(c + 2) for c in range(0x4E00, 0x4E00 + 24000, 4)]  # 12,000 separate characters
    seg = WordSegmenter.build(words, "zh")  # 12,000 ranges: Oniguruma takes 10,000 a class
    assert seg.segment([words[5] + words[7]]) == [[words[5], words[7]]]
    filler = chr(0x4E01)  # a gap filled in: an entry of its own, so its run still matches
    assert filler in seg.tokenizer.get_vocab() and seg.segment([filler + words[0]]) == [[filler, words[0]]]
    assert json.loads(seg.tokenizer.to_str())["model"]["type"] == "WordPiece"


ODD = ["外卖²很好吃", "e\u0301外卖", "👍好吃👍👍", "a_b外卖", "x²y", "很\u200b好", "ＡＢＣ外卖123好吃", "ǅ外"]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_fast_path_equals_the_offsets_path_on_odd_characters(language: str) -> None:
    seg = WordSegmenter.build([*TINY, "abc", "123", "x"], language)
    texts = [seg.normalize(t) for t in ODD]
    assert seg.segment(ODD) == [seg._with_offsets(t) for t in texts]


def test_pieces_that_disagree_with_the_ids_fall_back_to_offsets() -> None:
    import re

    seg = WordSegmenter.build(TINY, "zh")
    expected = seg.segment(["外卖火星！好吃"])
    seg._pieces = re.compile(r"\S{2}")  # splits the text wrong: every check must notice
    assert seg._aligned("外卖火星!好吃", seg.encode(["外卖火星!好吃"])[0].ids) is None
    assert seg.segment(["外卖火星！好吃"]) == expected == [["外卖", "火", "星", "!", "好吃"]]
