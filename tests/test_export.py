"""The `export` stage: word2vec text/binary (gensim round trip), model2vec folders, the TensorBoard projector,
the stage's choice by name globs, file modes under the umask, and metrics/headline.json."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from embedforge.core.catalog import Catalog, MatrixRecord
from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path
from embedforge.core.params import ExportParams, load_params
from embedforge.evaluate.classification import ClassifierScores
from embedforge.evaluate.outputs import headline
from embedforge.evaluate.probe import ProbeScores
from embedforge.evaluate.results import MatrixScores, Results, to_metrics
from embedforge.evaluate.similarity import AnalogyResult, SimilarityResult
from embedforge.export import run_export, select, write_model2vec
from embedforge.export.model2vec import unknown_texts
from embedforge.export.projector import CONFIG_FILE

WORDS = ["好吃", "难吃", "外卖", "送餐", "good", "a b"]  # "a b": whitespace inside a word


def _wv(seed: int = 0, words: list[str] = WORDS) -> WordVectors:
    weight = torch.randn(len(words), 8, generator=torch.Generator().manual_seed(seed))
    info = pd.DataFrame({"count": range(len(words)), "method": "cls", "contexts": 0})
    return WordVectors(words, weight, info)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """Three matrices and their index, as extract leaves them."""
    catalog = Catalog(tmp_path / "embeddings")
    names = ["cls_base", "decontext_base_L1", "decontext_finetuned_L1"]
    for i, name in enumerate(names):
        _wv(i).save(catalog.path(name))
    records = [MatrixRecord(n, n.split("_")[0], "base", None, "mean", "none", len(WORDS), 8) for n in names]
    catalog.write_index(records, len(WORDS))
    return catalog


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_round_trips_through_gensim(tmp_path: Path, binary: bool) -> None:
    from gensim.models import KeyedVectors

    wv = _wv()
    path = wv.save_word2vec(tmp_path / "m.w2v", binary=binary)
    kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert kv.index_to_key == [w.replace(" ", "_") for w in WORDS]
    atol = 0 if binary else 1e-5  # binary is the float32 bytes; text keeps 6 significant digits
    np.testing.assert_allclose(kv.vectors, wv.weight.numpy(), rtol=1e-5, atol=atol)
    assert WordVectors.load_word2vec(path).words == kv.index_to_key  # and our own reader agrees


def test_model2vec_folder_loads_as_a_static_sentence_encoder(tmp_path: Path) -> None:
    model2vec = pytest.importorskip("model2vec")
    wv = _wv()
    folder = write_model2vec(wv, tmp_path / "m2v")
    model = model2vec.StaticModel.from_pretrained(folder, normalize=False)
    assert model.dim == wv.dim
    # one known word -> its row; an unknown word is dropped; upper case and NFKC forms are normalised
    np.testing.assert_allclose(model.encode(["好吃"])[0], wv.weight[0].numpy(), rtol=1e-6)
    both = model.encode(["ＧＯＯＤ 外卖 火星"])[0]
    np.testing.assert_allclose(both, wv.weight[[4, 2]].mean(0).numpy(), rtol=1e-5, atol=1e-6)
    unit = model2vec.StaticModel.from_pretrained(folder)  # the folder's default: unit-length sentences
    assert abs(float(np.linalg.norm(unit.encode(["难吃 送餐"])[0])) - 1.0) < 1e-5


def test_model2vec_folder_has_the_documented_layout(tmp_path: Path) -> None:
    """The files and keys model2vec 0.10 reads, checked without model2vec installed."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    wv = _wv()
    folder = write_model2vec(wv, tmp_path / "m2v")
    assert {p.name for p in folder.iterdir()} == {
        "model.safetensors",
        "tokenizer.json",
        "config.json",
        "modules.json",
    }
    embeddings = load_file(str(folder / "model.safetensors"))["embeddings"]
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    matching = set("好吃难外卖送餐")  # the characters of the words that are no word themselves
    assert tokenizer.get_vocab_size() == len(WORDS) + len(matching) + 1  # then [UNK]
    assert embeddings.shape == (tokenizer.get_vocab_size(), wv.dim)
    torch.testing.assert_close(embeddings[: len(WORDS)], wv.weight)
    assert not embeddings[len(WORDS) :].any()  # zero rows for the matching characters and [UNK]
    assert tokenizer.encode("好吃 GOOD", add_special_tokens=False).ids == [0, 4]
    assert tokenizer.encode("好吃外卖", add_special_tokens=False).ids == [0, 2]  # raw Chinese is segmented
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "model2vec" and config["hidden_dim"] == wv.dim and config["normalize"]
    assert config["embedforge_words"] == len(WORDS) and config["embedforge_language"] == "zh"


RAW = ["这家", "外卖", "很", "好吃", "难吃", "送餐", "慢"]


def _rows(wv: WordVectors, words: list[str]) -> np.ndarray:
    return wv.weight[[wv.words.index(w) for w in words]].numpy()


def test_model2vec_encodes_raw_chinese_as_the_mean_of_its_segmented_words(tmp_path: Path) -> None:
    model2vec = pytest.importorskip("model2vec")
    wv = _wv(words=RAW)
    folder = write_model2vec(wv, tmp_path / "m2v")
    model = model2vec.StaticModel.from_pretrained(folder, normalize=False)
    assert model.tokenize(["这家外卖很好吃"]) == [[0, 1, 2, 3]]
    raw, spaced, punct = model.encode(["这家外卖很好吃", "这家 外卖 很 好吃", "这家外卖，很好吃！"])
    mean = _rows(wv, ["这家", "外卖", "很", "好吃"]).mean(0)
    assert np.linalg.norm(raw) > 0
    np.testing.assert_allclose(raw, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(spaced, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(punct, mean, rtol=1e-5, atol=1e-6)  # punctuation is [UNK]: dropped
    # 餐 alone: a matching character with a zero row; unit-length vectors point the same way without it
    unit = model2vec.StaticModel.from_pretrained(folder)
    both = unit.encode(["送餐慢", "餐慢"])
    np.testing.assert_allclose(
        both[0],
        _rows(wv, ["送餐", "慢"]).mean(0) / np.linalg.norm(_rows(wv, ["送餐", "慢"]).mean(0)),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        both[1], _rows(wv, ["慢"])[0] / np.linalg.norm(_rows(wv, ["慢"])[0]), rtol=1e-5, atol=1e-6
    )


def test_a_text_with_no_known_token_is_the_zero_vector_and_unknown_texts_names_it(tmp_path: Path) -> None:
    model2vec = pytest.importorskip("model2vec")
    folder = write_model2vec(_wv(words=RAW), tmp_path / "m2v")
    texts = ["火星人！", "餐", "", "外卖火星"]
    vectors = model2vec.StaticModel.from_pretrained(folder).encode(texts)
    assert [bool(np.linalg.norm(v)) for v in vectors] == [False, False, False, True]
    assert unknown_texts(folder, texts) == ["火星人！", "餐", ""]


def test_the_tokenizer_json_pooled_as_sentence_transformers_does_matches_model2vec(tmp_path: Path) -> None:
    """sentence-transformers' StaticEmbedding: the tokenizer wrapped in transformers' PreTrainedTokenizerFast,
    ids with [UNK] kept (a zero row) -> EmbeddingBag mean -> Normalize, its steps spelled out through
    transformers and torch (the next test runs sentence-transformers itself)."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    wv = _wv(words=RAW)
    folder = write_model2vec(wv, tmp_path / "m2v")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(folder / "tokenizer.json")))
    weights = load_file(str(folder / "model.safetensors"))["embeddings"]
    bag = torch.nn.EmbeddingBag.from_pretrained(weights, mode="mean")
    ids = tokenizer(["这家外卖，很好吃！"], add_special_tokens=False)["input_ids"]
    assert len(ids[0]) == 6  # four words and two [UNK]s
    pooled = torch.nn.functional.normalize(bag(torch.tensor(ids)), dim=-1)[0].numpy()
    mean = _rows(wv, ["这家", "外卖", "很", "好吃"]).mean(0)
    np.testing.assert_allclose(pooled, mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)


def test_sentence_transformers_encodes_raw_chinese_from_the_folder(tmp_path: Path) -> None:
    # a dev dependency (pyproject.toml, pinned in constraints.txt): imported, not skipped when absent
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    wv = _wv(words=RAW)
    folder = write_model2vec(wv, tmp_path / "m2v")
    model = SentenceTransformer(modules=[StaticEmbedding.from_model2vec(str(folder))], device="cpu")
    mean = _rows(wv, ["这家", "外卖", "很", "好吃"]).mean(0)
    got = model.encode(["这家外卖很好吃"], normalize_embeddings=True)[0]
    np.testing.assert_allclose(got, mean / np.linalg.norm(mean), rtol=1e-4, atol=1e-5)
    # the folder itself (its modules.json: StaticEmbedding, then Normalize), no keyword
    whole = SentenceTransformer(str(folder), device="cpu").encode(["这家外卖很好吃"])[0]
    np.testing.assert_allclose(whole, mean / np.linalg.norm(mean), rtol=1e-4, atol=1e-5)


def test_an_english_export_matches_whole_words(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    folder = write_model2vec(_wv(words=["good", "food", "ness"]), tmp_path / "m2v", language="en")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer.encode("Good food, goodness!", add_special_tokens=False).tokens == [
        "good",
        "food",
        "[UNK]",
        "[UNK]",
        "[UNK]",
    ]


def test_a_matrix_with_an_unk_word_is_refused_naming_the_export(tmp_path: Path) -> None:
    with pytest.raises(
        EmbedforgeError, match=r"model2vec export of m2v: word segmenter: word 1 \('\[UNK\]'\)"
    ):
        write_model2vec(_wv(words=["好", "[UNK]"]), tmp_path / "m2v")
    assert not (tmp_path / "m2v").exists()


def test_export_stage_writes_each_format_for_the_matrices_its_globs_name(
    tmp_path: Path, catalog: Catalog
) -> None:
    params = ExportParams(
        word2vec=["cls_base"],
        word2vec_binary=["decontext_*"],
        model2vec=["decontext_base_L1"],
        projector=["*_L1"],
    )
    out = tmp_path / "exports"
    chosen = run_export(params, catalog, out)
    assert chosen["word2vec_binary"] == ["decontext_base_L1", "decontext_finetuned_L1"]  # catalog order
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == [
        "README.md",
        "model2vec/decontext_base_L1/config.json",
        "model2vec/decontext_base_L1/model.safetensors",
        "model2vec/decontext_base_L1/modules.json",
        "model2vec/decontext_base_L1/tokenizer.json",
        "projector/decontext_base_L1.meta.tsv",
        "projector/decontext_base_L1.tsv",
        "projector/decontext_finetuned_L1.meta.tsv",
        "projector/decontext_finetuned_L1.tsv",
        f"projector/{CONFIG_FILE}",
        "word2vec/cls_base.txt",
        "word2vec/decontext_base_L1.bin",
        "word2vec/decontext_finetuned_L1.bin",
    ]
    loaded = WordVectors.load_word2vec(out / "word2vec/decontext_finetuned_L1.bin")
    torch.testing.assert_close(loaded.weight, catalog.load("decontext_finetuned_L1").weight)
    config = (out / "projector" / CONFIG_FILE).read_text(encoding="utf-8")
    blocks = re.findall(
        r'embeddings \{\n  tensor_name: "(\w+)"\n  tensor_path: "\1\.tsv"\n'
        r'  metadata_path: "\1\.meta\.tsv"\n  tensor_shape: 6\n  tensor_shape: 8\n\}',
        config,
    )
    assert blocks == ["decontext_base_L1", "decontext_finetuned_L1"]
    assert len((out / "projector/decontext_base_L1.tsv").read_text(encoding="utf-8").splitlines()) == 6
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "tensorboard --logdir exports/projector" in readme and "word2vec/cls_base.txt" in readme


def test_no_exports_by_default_leaves_a_readme_only(tmp_path: Path, catalog: Catalog) -> None:
    assert load_params(Path(__file__).parents[1] / "params.yaml").export == ExportParams()
    run_export(ExportParams(), catalog, tmp_path / "exports")
    assert [p.name for p in (tmp_path / "exports").iterdir()] == ["README.md"]
    assert "No exports requested" in (tmp_path / "exports/README.md").read_text(encoding="utf-8")


def test_a_pattern_that_matches_no_matrix_is_an_error_before_any_write(
    tmp_path: Path, catalog: Catalog
) -> None:
    with pytest.raises(EmbedforgeError, match=r"export\.projector: 'agregate_\*' matches no matrix"):
        run_export(ExportParams(word2vec=["cls_base"], projector=["agregate_*"]), catalog, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert select(ExportParams(model2vec=["cls_*", "cls_base"]), ["cls_base", "x"])["model2vec"] == [
        "cls_base"
    ]


def test_export_stage_script_runs_and_replaces_the_folder(
    tmp_path: Path, catalog: Catalog, run_stage
) -> None:
    (tmp_path / "params.yaml").write_text("export:\n  word2vec: [cls_base]\n", encoding="utf-8")
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "stale.txt").write_text("old\n", encoding="utf-8")
    code, err = run_stage(tmp_path, "export")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["README.md", "word2vec"]


def test_published_files_get_the_mode_of_a_plain_open_under_the_umask(
    tmp_path: Path, catalog: Catalog
) -> None:
    """safetensors writes 0600 whatever the umask; atomic_path gives files and folders the usual modes."""
    old = os.umask(0o027)
    try:
        wv = _wv()
        wv.save(tmp_path / "m")
        run_export(ExportParams(model2vec=["cls_base"]), catalog, tmp_path / "direct")
        with atomic_path(tmp_path / "exports", is_dir=True) as tmp:
            run_export(ExportParams(model2vec=["cls_base"]), catalog, tmp)
    finally:
        os.umask(old)
    modes = {
        p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in [
            tmp_path / "m.safetensors",
            *(tmp_path / "direct").rglob("*"),
            *(tmp_path / "exports").rglob("*"),
            tmp_path / "exports",
        ]
    }
    expected = {k: 0o750 if (tmp_path / k).is_dir() else 0o640 for k in modes}
    assert modes == expected


def _sim(rho: float | None) -> SimilarityResult:
    return SimilarityResult(rho, rho, 10, 10, [], pd.DataFrame())


def test_headline_holds_the_few_numbers_compared_across_experiments() -> None:
    scores = {
        "cls_finetuned": MatrixScores(
            {"ws": _sim(0.5), "msl": _sim(0.3)}, {"ca": AnalogyResult(4, 10, 10, [])}, {}
        ),
        "decontext_base_L4": MatrixScores(
            {"ws": _sim(0.6), "msl": _sim(0.1)}, {"ca": AnalogyResult(2, 10, 10, [])}, {}
        ),
        "input_base": MatrixScores(
            {"ws": _sim(None), "msl": _sim(0.35)}, {"ca": AnalogyResult(0, 0, 10, [])}, {}
        ),
    }
    probe = {
        name: ProbeScores({"accuracy": 0.8, "macro_f1": f1}, {"accuracy": 0.8, "macro_f1": 0.7})
        for name, f1 in [
            ("cls_finetuned", 0.81),
            ("decontext_base_L4", 0.86),
            ("input_base", 0.8),
            ("random", 0.75),
        ]
    }
    classifier = ClassifierScores(["neg", "pos"], np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]))
    doc = headline(to_metrics(Results([], scores, classifier, probe)))
    assert doc == {
        "similarity": 0.4,  # cls_finetuned: mean(.5, .3); input_base lacks ws, so cannot win on the mean
        "analogy": 0.4,
        "classifier": classifier.metrics()["macro_f1"],
        "classifier_accuracy": 0.75,
        "probe": 0.86,
        "probe_random": 0.75,
        "best": {"ws": 0.6, "msl": 0.35, "ca": 0.4},
        "cls_finetuned": {"ws": 0.5, "msl": 0.3, "ca": 0.4},
    }


def test_the_export_stage_segments_in_prepare_s_language(tmp_path: Path, catalog: Catalog, run_stage) -> None:
    (tmp_path / "params.yaml").write_text(
        "prepare:\n  language: en\nexport:\n  model2vec: [cls_base]\n", encoding="utf-8"
    )
    code, err = run_stage(tmp_path, "export")
    assert code == 0, err
    config = json.loads((tmp_path / "exports/model2vec/cls_base/config.json").read_text(encoding="utf-8"))
    assert config["embedforge_language"] == "en"
    run_export(ExportParams(model2vec=["cls_base"]), catalog, tmp_path / "zh")
    assert (
        json.loads((tmp_path / "zh/model2vec/cls_base/config.json").read_text())["embedforge_language"]
        == "zh"
    )
