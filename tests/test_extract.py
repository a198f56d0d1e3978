"""The extract stage: strategies on the tiny model vs. direct computation, outputs, and bad input."""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from embedforge import load_embedding
from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import MAX_PADDING, reduce_pieces, token_batches
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import ExtractParams
from embedforge.core.prepared import PreparedData
from embedforge.extract import STRATEGIES, read_word_list, run_extract
from embedforge.extract.postprocess import postprocess

ROOT = Path(__file__).resolve().parents[1]
EXTRA_WORD = "饭菜很香"  # absent from the fixture corpus as one segmented word
BASE = ExtractParams(extra_words=[], max_contexts=3)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, reviews_csv: Path) -> Path:
    """A small prepared dir with the contract's columns: train.parquet (text, words), vocab.parquet."""
    from embedforge.prepare.segment import segment

    out = tmp_path_factory.mktemp("prepared")
    texts = pd.read_csv(reviews_csv)["review"].astype(str).tolist()
    words = segment(texts, "zh")
    pd.DataFrame({"text": texts, "words": words}).to_parquet(out / "train.parquet")
    counts = collections.Counter(w for s in words for w in s)
    vocab = [(w, c) for w, c in counts.most_common() if c >= 2]
    pd.DataFrame({"word": [w for w, _ in vocab], "count": [c for _, c in vocab]}).to_parquet(
        out / "vocab.parquet"
    )
    (out / "extra.txt").write_text(f"{EXTRA_WORD}\n好吃\n", encoding="utf-8")
    return out


def extract(params: ExtractParams, prepared: Path, model: Path, out: Path) -> list[dict]:
    return run_extract(
        params,
        prepared=PreparedData(prepared),
        model_dirs={"base": model, "finetuned": model},
        out_dir=out,
        progress=False,
    )


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory, prepared: Path, tiny_model_dir: Path) -> Path:
    """The default strategies, both sources, every layer, plus an extra-words file."""
    out = tmp_path_factory.mktemp("embeddings")
    extract(replace(BASE, extra_words=[str(prepared / "extra.txt")]), prepared, tiny_model_dir, out)
    return out


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path):  # noqa: ANN201
    return AutoModel.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def alone_states(model, word: str) -> tuple[torch.Tensor, ...]:  # noqa: ANN001
    """hidden_states of `[CLS] word [SEP]`, computed the plain way (batch 1)."""
    net, tok = model
    with torch.no_grad():
        return net(**tok(word, return_tensors="pt"), output_hidden_states=True).hidden_states


def test_default_run_writes_every_strategy_source_and_layer(default_run: Path) -> None:
    index = json.loads((default_run / "index.json").read_text(encoding="utf-8"))
    names = {m["name"] for m in index["matrices"]}
    for source in ("base", "finetuned"):
        assert {f"cls_{source}", f"input_{source}"} <= names
        assert {f"{s}_{source}_L{i}" for s in ("decontext", "aggregate") for i in range(3)} <= names
    assert len(names) == 2 * (2 + 3 + 3)
    for m in index["matrices"]:
        assert (default_run / f"{m['name']}.safetensors").is_file()
        assert set(m) >= {"name", "strategy", "source", "layer", "pooling", "postprocess"}
    info = pd.read_parquet(default_run / "aggregate_base_L2.vocab.parquet")
    assert list(info.columns) == ["word", "count", "method", "contexts"]


def test_load_embedding_aggregate_row_equals_direct_computation(
    default_run: Path, prepared: Path, model
) -> None:  # noqa: ANN001
    emb, vocab = load_embedding(default_run / "aggregate_base_L1")
    corpus_vocab = pd.read_parquet(prepared / "vocab.parquet")["word"].tolist()
    assert isinstance(emb, torch.nn.Embedding)
    assert vocab.words == corpus_vocab + [EXTRA_WORD]  # 好吃 is already in the corpus vocabulary
    assert tuple(emb.weight.shape) == (len(corpus_vocab) + 2, 32)  # + the unknown-word row
    word = "好吃"
    # direct: every sentence containing the word, encoded alone, pieces of its first occurrence pooled
    net, tok = model
    vectors = []
    for words in pd.read_parquet(prepared / "train.parquet")["words"]:
        words = list(words)
        if word not in words or len(vectors) == BASE.max_contexts:
            continue
        enc = tok(words, is_split_into_words=True, return_tensors="pt")
        positions = [i for i, w in enumerate(enc.word_ids()) if w == words.index(word)]
        with torch.no_grad():
            hidden = net(**enc, output_hidden_states=True).hidden_states[1][0]
        vectors.append(hidden[positions].mean(0))
    row = emb(vocab.lookup([word]))[0]
    torch.testing.assert_close(row, torch.stack(vectors).mean(0), atol=1e-5, rtol=1e-4)
    info = vocab.info.iloc[int(vocab.lookup(word))]
    assert info["method"] == "aggregate" and info["contexts"] == len(vectors) == BASE.max_contexts


def test_isolated_strategies_equal_direct_computation(default_run: Path, model) -> None:  # noqa: ANN001
    word = "好吃"
    states = alone_states(model, word)
    net, tok = model
    pieces = tok(word, add_special_tokens=False)["input_ids"]
    expected = {
        "cls_base": states[-1][0, 0],
        "decontext_base_L0": states[0][0, 1:-1].mean(0),
        "decontext_finetuned_L2": states[2][0, 1:-1].mean(0),
        "input_base": net.get_input_embeddings().weight[pieces].mean(0),
    }
    for name, vector in expected.items():
        wv = WordVectors.load(default_run / name)
        torch.testing.assert_close(wv.weight[wv.index[word]], vector.detach(), atol=1e-5, rtol=1e-4)


def test_words_without_context_fall_back_to_decontext(default_run: Path) -> None:
    agg = WordVectors.load(default_run / "aggregate_base_L2")
    dec = WordVectors.load(default_run / "decontext_base_L2")
    row = agg.index[EXTRA_WORD]
    assert agg.info["method"][row] == "fallback:decontext" and agg.info["contexts"][row] == 0
    assert agg.info["count"][row] == 0
    torch.testing.assert_close(agg.weight[row], dec.weight[row])
    assert (agg.info["contexts"] <= BASE.max_contexts).all()


def test_layer_average_small_budget_and_max_pooling(
    tmp_path: Path, default_run: Path, prepared: Path, tiny_model_dir: Path, model
) -> None:  # noqa: ANN001
    params = replace(
        BASE, strategies=["decontext", "aggregate"], sources=["base"], layers=[1, 2], token_budget=64
    )
    records = extract(params, prepared, tiny_model_dir, tmp_path / "mean")
    assert [r["name"] for r in records] == ["decontext_base_L1_2", "aggregate_base_L1_2"]
    assert records[0]["layer"] == [1, 2]
    # mean pooling commutes with layer averaging; a 64-token budget must not change any row
    averaged = WordVectors.load(tmp_path / "mean" / "aggregate_base_L1_2").weight
    per_layer = [WordVectors.load(default_run / f"aggregate_base_L{i}").weight for i in (1, 2)]
    expected = (per_layer[0] + per_layer[1])[: len(averaged)] / 2  # the default run has one extra word
    torch.testing.assert_close(averaged, expected, atol=1e-5, rtol=1e-4)

    extract(
        replace(params, strategies=["decontext"], pooling="max"), prepared, tiny_model_dir, tmp_path / "max"
    )
    wv = WordVectors.load(tmp_path / "max" / "decontext_base_L1_2")
    states = alone_states(model, "好吃")
    expected = ((states[1] + states[2]) / 2)[0, 1:-1].max(0).values
    torch.testing.assert_close(wv.weight[wv.index["好吃"]], expected, atol=1e-5, rtol=1e-4)


def test_reduce_pieces_first_last_mean_max() -> None:
    tok = torch.tensor([[[1.0], [5.0], [3.0], [7.0]]])  # runs: [1, 5, 3] and [7]
    lengths = torch.tensor([3, 1])
    results = {p: reduce_pieces(tok, lengths, p).flatten().tolist() for p in ("mean", "max", "first", "last")}
    assert results == {"mean": [3.0, 7.0], "max": [5.0, 7.0], "first": [1.0, 7.0], "last": [3.0, 7.0]}


def test_token_batches_sorted_within_budget_and_little_padding() -> None:
    gen = torch.Generator().manual_seed(0)
    items = [([0] * int(n), i) for i, n in enumerate(torch.randint(3, 120, (500,), generator=gen))]
    batches = list(token_batches(items, 1024))
    assert sorted(p for b in batches for _, p in b) == list(range(500))
    widths = [len(b[-1][0]) for b in batches]
    assert widths == sorted(widths)
    for b in batches:
        padded, real = len(b) * len(b[-1][0]), sum(len(ids) for ids, _ in b)
        # more padding only while a batch is too small to matter
        assert padded <= 1024 and (padded - real <= MAX_PADDING * padded or real - len(b[-1][0]) < 1024 // 4)
    padding = 1 - sum(len(ids) for ids, _ in items) / sum(len(b) * len(b[-1][0]) for b in batches)
    assert padding < 0.1


def test_postprocess_center_top_pcs_and_normalize() -> None:
    torch.manual_seed(0)
    weight = torch.randn(50, 8) * torch.linspace(5, 0.5, 8) + 3.0
    centered = postprocess(weight, center=True, remove_top_pcs=0, normalize=False)
    assert centered.mean(0).abs().max() < 1e-5
    abtt = postprocess(weight, center=False, remove_top_pcs=2, normalize=False)
    top = torch.linalg.svd(centered.double(), full_matrices=False).Vh[:2].float()
    assert (abtt @ top.T).abs().max() < 1e-4
    normed = postprocess(weight, center=False, remove_top_pcs=0, normalize=True)
    torch.testing.assert_close(normed.norm(dim=1), torch.ones(50))


def test_vectors_strategy_postprocess_and_exports(
    tmp_path: Path, prepared: Path, tiny_model_dir: Path
) -> None:
    vocab = pd.read_parquet(prepared / "vocab.parquet")["word"].tolist()
    covered = {w: torch.randn(32) for w in vocab[:5]}
    src = WordVectors(list(covered), torch.stack(list(covered.values())))
    src.save_word2vec(tmp_path / "my.vectors.txt")
    params = replace(
        BASE,
        strategies=["vectors", "input"],
        sources=["base"],
        vector_files=[str(tmp_path / "my.vectors.txt")],
        unknown="subword",
        normalize=True,
        export_word2vec=["vectors_*"],
        export_projector=["input_base"],
    )
    out = tmp_path / "emb"
    records = extract(params, prepared, tiny_model_dir, out)
    assert {r["name"] for r in records} == {"vectors_my_vectors", "input_base"}
    assert all(r["postprocess"] == "l2" for r in records)
    vec, inp = WordVectors.load(out / "vectors_my_vectors"), WordVectors.load(out / "input_base")
    first = torch.nn.functional.normalize(covered[vocab[0]], dim=0)
    torch.testing.assert_close(vec.weight[0], first, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vec.weight[10], inp.weight[10])  # subword policy = the input table
    assert vec.info["method"][0] == "vectors" and vec.info["method"][10] == "unknown:subword"
    assert WordVectors.load_word2vec(out / "vectors_my_vectors.w2v.txt").words == vocab
    assert len((out / "input_base.tsv").read_text(encoding="utf-8").splitlines()) == len(vocab)


def test_extra_word_files_of_every_kind(tmp_path: Path) -> None:
    (tmp_path / "sim.tsv").write_text("word1\tword2\tscore\n老虎\t猫\t7.35\n", encoding="utf-8")
    (tmp_path / "analogy.txt").write_text(": capital\n雅典 希腊 北京 中国\n", encoding="utf-8")
    (tmp_path / "plain.txt").write_text("好吃\n\n味道\n", encoding="utf-8")
    assert read_word_list(tmp_path / "sim.tsv") == ["老虎", "猫"]
    assert read_word_list(tmp_path / "analogy.txt") == ["雅典", "希腊", "北京", "中国"]
    assert read_word_list(tmp_path / "plain.txt") == ["好吃", "味道"]
    for path in ExtractParams().extra_words:  # the default run's benchmark files
        words = read_word_list(ROOT / path)
        assert words and not any(w.replace(".", "").isdigit() for w in words)


def _no_weights(tmp_path: Path, model: Path) -> Path:
    out = tmp_path / "no-weights"
    shutil.copytree(model, out)
    (out / "model.safetensors").unlink()
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(layers=3), "extract.layers = 3 is beyond the depth"),
        (dict(layers=[1, -4]), "extract.layers = -4 is beyond the depth"),
        (dict(strategies=["cls", "tutorial"]), "extract.strategies[1] = 'tutorial' is not a known strategy"),
        (dict(extra_words=["latin1.txt"]), "latin1.txt: not UTF-8 text"),
        (dict(vocab="empty"), "vocabulary is empty"),
        (dict(model="no-weights"), "no-weights: model folder has no weights"),
    ],
)
def test_bad_input_one_line_error_and_no_output(
    tmp_path: Path, prepared: Path, tiny_model_dir: Path, change: dict, message: str
) -> None:
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    root = prepared
    if change.pop("vocab", None):
        root = tmp_path / "prepared"
        shutil.copytree(prepared, root)
        pd.DataFrame({"word": pd.Series([], dtype=str), "count": pd.Series([], dtype="int64")}).to_parquet(
            root / "vocab.parquet"
        )
    model = _no_weights(tmp_path, tiny_model_dir) if change.pop("model", None) else tiny_model_dir
    change = {k: [str(tmp_path / f) for f in v] if k == "extra_words" else v for k, v in change.items()}
    with pytest.raises(EmbedforgeError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        run_extract(
            replace(BASE, **change),
            prepared=PreparedData(root),
            model_dirs={"base": model, "finetuned": model},
            out_dir=tmp_path / "out",
            progress=False,
        )
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_registry_lists_every_strategy_of_the_issue() -> None:
    assert set(STRATEGIES) == {"cls", "input", "decontext", "aggregate", "vectors"}


def _project(tmp_path: Path, prepared: Path, model: Path, extract_yaml: str) -> Path:
    """A project folder laid out as the stage expects."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base").symlink_to(model)
    (tmp_path / "models" / "finetuned").symlink_to(model)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prepared").symlink_to(prepared)
    (tmp_path / "params.yaml").write_text(f"extract:\n{extract_yaml}", encoding="utf-8")
    return tmp_path


def test_stage_script_runs_and_reports_bad_input(
    tmp_path: Path, prepared: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    project = _project(tmp_path, prepared, tiny_model_dir, "  strategies: [input]\n  extra_words: []\n")
    monkeypatch.chdir(project)
    runpy.run_path(str(ROOT / "stages" / "extract.py"), run_name="__main__")
    index = json.loads((project / "embeddings" / "index.json").read_text(encoding="utf-8"))
    assert [m["name"] for m in index["matrices"]] == ["input_base", "input_finetuned"]

    (project / "params.yaml").write_text("extract:\n  layers: 9\n  extra_words: []\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "extract.py")], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: extract.layers = 9 is beyond the depth")
    assert (project / "embeddings" / "index.json").is_file()  # the previous output is left intact


def test_aggregate_alone_encodes_fallback_words_itself(
    tmp_path: Path, default_run: Path, prepared: Path, tiny_model_dir: Path
) -> None:
    params = replace(
        BASE, strategies=["aggregate"], sources=["base"], extra_words=[str(prepared / "extra.txt")]
    )
    extract(params, prepared, tiny_model_dir, tmp_path)
    alone = WordVectors.load(tmp_path / "aggregate_base_L2")
    torch.testing.assert_close(alone.weight, WordVectors.load(default_run / "aggregate_base_L2").weight)


def test_finetuned_classifier_folder_loads_its_encoder(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

    from embedforge.core.encoder import Encoder

    clf = BertForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    with torch.no_grad():
        clf.bert.encoder.layer[0].output.dense.weight.add_(1.0)  # as if fine-tuned
    clf.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path)
    encoder = Encoder(tmp_path)
    assert type(encoder.model).__name__ == "BertModel"
    torch.testing.assert_close(
        encoder.model.encoder.layer[0].output.dense.weight, clf.bert.encoder.layer[0].output.dense.weight
    )


def test_word_cut_by_truncation_is_not_a_context(tiny_model_dir: Path) -> None:
    from embedforge.core.encoder import Encoder

    enc = Encoder(tiny_model_dir)
    enc.max_length = 4  # [CLS] 很 好 [SEP]: 好吃 loses its second piece
    (ids, spans), (_, whole) = enc.encode([["很", "好吃"], ["很", "好"]])
    assert len(ids) == 4 and spans == [(1, 2), None]
    assert whole == [(1, 2), (2, 3)]  # a word that fits entirely is kept, even in a full-length sequence


def test_aggregate_marks_words_without_pieces_as_empty(
    tmp_path: Path, prepared: Path, tiny_model_dir: Path
) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("\u200b\n", encoding="utf-8")  # the tokenizer gives this word no piece at all
    params = replace(
        BASE, strategies=["aggregate"], sources=["base"], layers="last", extra_words=[str(extra)]
    )
    extract(params, prepared, tiny_model_dir, tmp_path / "out")
    wv = WordVectors.load(tmp_path / "out" / "aggregate_base_L2")
    row = wv.index["\u200b"]
    assert wv.info["method"][row] == "empty"
    assert not wv.weight[row].any()
