"""The extract stage: strategies on tiny models vs. direct computation, outputs, and bad input.

Every run extracts `base` from a tiny WordPiece BERT and `finetuned` from a tiny byte-level BPE
RoBERTa, so each comparison with a plain forward pass runs once per tokenizer kind.
"""

from __future__ import annotations

import json
import logging
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
from embedforge.core.benchmarks import benchmark_words, read_pairs
from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import Encoder, reduce_pieces
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import ExtractParams, parse_params
from embedforge.core.prepared import PreparedData
from embedforge.core.profiles import TEMPLATE_ENSEMBLES
from embedforge.extract import STRATEGIES, build_vocabulary, extract_matrices, run_extract
from embedforge.extract.batching import MAX_PADDING, token_batches
from embedforge.extract.postprocess import postprocess

ROOT = Path(__file__).resolve().parents[1]
EXTRA_WORD = "饭菜很香"  # absent from the fixture corpus as one segmented word
# the study configuration (every strategy and layer, the bare word, no post-processing), on tiny models
BASE = ExtractParams(
    strategies=["cls", "input", "decontext", "aggregate", "word2vec"],
    layers="all",
    template=None,
    extra_templates=[],
    positions="word",
    center=False,
    extra_words=[],
    max_contexts=3,
)
SOURCES = ("base", "finetuned")  # base: WordPiece BERT; finetuned: byte-level BPE RoBERTa


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path, tiny_bpe_model_dir: Path) -> dict[str, Path]:
    return {"base": tiny_model_dir, "finetuned": tiny_bpe_model_dir}


@pytest.fixture(scope="module")
def extra_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word list with a word the corpus lacks and one it has."""
    path = tmp_path_factory.mktemp("words") / "extra.txt"
    path.write_text(f"{EXTRA_WORD}\n好吃\n", encoding="utf-8")
    return path


def extract(params: ExtractParams, prepared: Path, models: dict[str, Path], out: Path) -> list:
    return run_extract(
        params, prepared=PreparedData(prepared), model_dirs=models, out_dir=out, progress=False
    )


@pytest.fixture(scope="module")
def default_run(
    tmp_path_factory: pytest.TempPathFactory, prepared_dir: Path, models: dict[str, Path], extra_file: Path
) -> Path:
    """The default strategies, both sources, every layer, plus an extra-words file."""
    out = tmp_path_factory.mktemp("embeddings")
    extract(replace(BASE, extra_words=[str(extra_file)]), prepared_dir, models, out)
    return out


@pytest.fixture(scope="module")
def nets(models: dict[str, Path]) -> dict[str, tuple]:
    """Each source's model and tokenizer, loaded the plain transformers way."""
    return {
        s: (AutoModel.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d)) for s, d in models.items()
    }


def alone_states(net, tok, word: str) -> tuple[torch.Tensor, ...]:  # noqa: ANN001
    """hidden_states of `[CLS] word [SEP]` (`<s> word </s>`), computed the plain way (batch 1)."""
    with torch.no_grad():
        return net(**tok(word, return_tensors="pt"), output_hidden_states=True).hidden_states


def test_default_run_writes_every_strategy_source_and_layer(default_run: Path) -> None:
    index = json.loads((default_run / "index.json").read_text(encoding="utf-8"))
    names = {m["name"] for m in index["matrices"]}
    for source in SOURCES:
        assert {f"cls_{source}", f"input_{source}"} <= names
        assert {f"{s}_{source}_L{i}" for s in ("decontext", "aggregate") for i in range(3)} <= names
    assert len(names) == 2 * (2 + 3 + 3) + 1  # + word2vec (no source)
    assert "word2vec" in names
    for m in index["matrices"]:
        assert (default_run / f"{m['name']}.safetensors").is_file()
        assert set(m) >= {"name", "strategy", "source", "layer", "pooling", "postprocess"}
    info = pd.read_parquet(default_run / "aggregate_base_L2.vocab.parquet")
    assert list(info.columns) == ["word", "count", "method", "contexts"]


@pytest.mark.parametrize("source", SOURCES)
def test_load_embedding_aggregate_row_equals_direct_computation(
    default_run: Path, prepared_dir: Path, nets: dict, source: str
) -> None:
    emb, vocab = load_embedding(default_run / f"aggregate_{source}_L1")
    corpus_vocab = PreparedData(prepared_dir).vocab()["word"].tolist()
    assert isinstance(emb, torch.nn.Embedding)
    assert vocab.words == corpus_vocab + [EXTRA_WORD]  # 好吃 is already in the corpus vocabulary
    assert tuple(emb.weight.shape) == (len(corpus_vocab) + 2, 32)  # + the unknown-word row
    word = "好吃"
    # direct: every sentence containing the word, encoded alone, pieces of its first occurrence pooled
    net, tok = nets[source]
    vectors = []
    for words in PreparedData(prepared_dir).split("train", ["words"])["words"]:
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


@pytest.mark.parametrize("source", SOURCES)
def test_isolated_strategies_equal_direct_computation(default_run: Path, nets: dict, source: str) -> None:
    word = "好吃"
    net, tok = nets[source]
    states = alone_states(net, tok, word)
    pieces = tok(word, add_special_tokens=False)["input_ids"]
    expected = {
        f"cls_{source}": states[-1][0, 0],
        f"decontext_{source}_L0": states[0][0, 1:-1].mean(0),
        f"decontext_{source}_L2": states[2][0, 1:-1].mean(0),
        f"input_{source}": net.get_input_embeddings().weight[pieces].mean(0),
    }
    for name, vector in expected.items():
        wv = WordVectors.load(default_run / name)
        torch.testing.assert_close(wv.weight[wv.index[word]], vector.detach(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("source", SOURCES)
def test_words_without_context_fall_back_to_decontext(default_run: Path, source: str) -> None:
    agg = WordVectors.load(default_run / f"aggregate_{source}_L2")
    dec = WordVectors.load(default_run / f"decontext_{source}_L2")
    row = agg.index[EXTRA_WORD]
    assert agg.info["method"][row] == "fallback:decontext" and agg.info["contexts"][row] == 0
    assert agg.info["count"][row] == 0
    torch.testing.assert_close(agg.weight[row], dec.weight[row])
    assert (agg.info["contexts"] <= BASE.max_contexts).all()


@pytest.mark.parametrize("source", SOURCES)
def test_layer_average_small_budget_and_max_pooling(
    tmp_path: Path, default_run: Path, prepared_dir: Path, models: dict, nets: dict, source: str
) -> None:
    params = replace(
        BASE, strategies=["decontext", "aggregate"], sources=[source], layers=[1, 2], token_budget=64
    )
    records = extract(params, prepared_dir, models, tmp_path / "mean")
    assert [r.name for r in records] == [f"decontext_{source}_L1_2", f"aggregate_{source}_L1_2"]
    assert records[0].layer == [1, 2]
    # mean pooling commutes with layer averaging; a 64-token budget must not change any row
    averaged = WordVectors.load(tmp_path / "mean" / f"aggregate_{source}_L1_2").weight
    per_layer = [WordVectors.load(default_run / f"aggregate_{source}_L{i}").weight for i in (1, 2)]
    expected = (per_layer[0] + per_layer[1])[: len(averaged)] / 2  # the default run has one extra word
    torch.testing.assert_close(averaged, expected, atol=1e-5, rtol=1e-4)

    maxed = replace(params, strategies=["decontext"], pooling="max", token_budget=BASE.token_budget)
    extract(maxed, prepared_dir, models, tmp_path / "max")
    wv = WordVectors.load(tmp_path / "max" / f"decontext_{source}_L1_2")
    states = alone_states(*nets[source], "好吃")
    expected = ((states[1] + states[2]) / 2)[0, 1:-1].max(0).values
    torch.testing.assert_close(wv.weight[wv.index["好吃"]], expected, atol=1e-5, rtol=1e-4)


def test_extract_matrices_in_memory_equals_the_stage_files(
    default_run: Path, prepared_dir: Path, models: dict, extra_file: Path
) -> None:
    data = PreparedData(prepared_dir)
    vocab = build_vocabulary(data, [extra_file])
    matrices = extract_matrices(
        models["finetuned"],  # a model folder; a loaded Encoder works too
        vocab.words,
        ["aggregate", "cls"],
        BASE,
        counts=vocab.counts,
        corpus=data.sentences("train"),
        source="finetuned",
        progress=False,
    )
    assert [m.name for m in matrices] == [f"aggregate_finetuned_L{i}" for i in range(3)] + ["cls_finetuned"]
    for m in matrices:
        saved = WordVectors.load(default_run / m.name)
        assert torch.equal(m.wv.weight, saved.weight) and m.wv.words == saved.words
        pd.testing.assert_frame_equal(m.wv.info, saved.info)
    assert matrices[-1].record().layer == 2 and matrices[0].record().pooling == "mean"


def test_aggregate_without_corpus_and_model_strategy_without_encoder_are_errors(models: dict) -> None:
    with pytest.raises(EmbedforgeError, match="'aggregate' needs a corpus"):
        extract_matrices(models["base"], ["好吃"], ["aggregate"], BASE, progress=False)
    with pytest.raises(EmbedforgeError, match="strategy 'cls' needs an encoder"):
        extract_matrices(None, ["好吃"], ["cls"], BASE)


@pytest.mark.parametrize(
    ("strategies", "encoded"),
    [
        (["cls", "decontext", "aggregate"], "all"),  # one decontext pass serves all three
        (["aggregate"], "missing"),  # alone, aggregate encodes only its fallback words
    ],
)
def test_the_decontext_pass_runs_once_per_source(
    monkeypatch: pytest.MonkeyPatch, prepared_dir: Path, models: dict, strategies: list[str], encoded: str
) -> None:
    import embedforge.extract.source as source_module

    calls: list[list[str]] = []
    real = source_module.encode_alone

    def spy(encoder, words, *args):  # noqa: ANN001, ANN002, ANN202
        calls.append(list(words))
        return real(encoder, words, *args)

    monkeypatch.setattr(source_module, "encode_alone", spy)
    data = PreparedData(prepared_dir)
    words = data.vocab()["word"].tolist() + [EXTRA_WORD]
    extract_matrices(
        Encoder(models["base"]), words, strategies, BASE, corpus=data.sentences("train"), progress=False
    )
    assert calls == [words if encoded == "all" else [EXTRA_WORD]]


def test_the_decontext_pass_shows_words_per_second_and_eta_unless_progress_is_off(
    capsys: pytest.CaptureFixture[str], prepared_dir: Path, models: dict
) -> None:
    words = PreparedData(prepared_dir).vocab()["word"].tolist()[:30]
    extract_matrices(models["base"], words, ["decontext"], BASE, source="base", progress=True)
    err = capsys.readouterr().err
    assert "base: words alone: 100%" in err and "30/30" in err and "word/s" in err
    extract_matrices(models["base"], words, ["decontext"], BASE, source="base", progress=False)
    assert "words alone" not in capsys.readouterr().err
    ensemble = replace(BASE, template="词语：{w}。", extra_templates=["“{w}”", "“{w}”的意思是"])
    extract_matrices(models["base"], words, ["decontext"], ensemble, source="base", progress=True)
    err = capsys.readouterr().err
    assert all(f"base: words in template {i}/3: 100%" in err for i in (1, 2, 3))  # which pass of how many


def test_extra_templates_average_the_pooled_rows_over_the_templates(prepared_dir: Path, models: dict) -> None:
    words = PreparedData(prepared_dir).vocab()["word"].tolist()[:30]
    t1, t2, t3 = "这个词是“{w}”。", "“{w}”的意思是", "词语：{w}。"

    def decontext(cfg: ExtractParams) -> dict[str, torch.Tensor]:
        out = extract_matrices(models["base"], words, ["cls", "decontext"], cfg, progress=False)
        return {m.strategy: m.wv.weight for m in out if m.layer == 2 or m.strategy == "cls"}

    one = [decontext(replace(BASE, template=t, layers=[2], center=False)) for t in (t1, t2, t3)]
    ens = decontext(replace(BASE, template=t1, extra_templates=[t2, t3], layers=[2], center=False))
    mean = (one[0]["decontext"] + one[1]["decontext"] + one[2]["decontext"]) / 3
    assert torch.allclose(ens["decontext"], mean, atol=1e-6)
    assert not torch.allclose(ens["decontext"], one[0]["decontext"], atol=1e-4)
    assert torch.equal(ens["cls"], one[0]["cls"])  # cls is the bare word's, whatever the templates
    twice = r"extract.template = '词语：\{w\}\{w\}'; expected text with exactly one"
    with pytest.raises(EmbedforgeError, match=twice):
        parse_params({"extract": {"extra_templates": ["词语：{w}{w}"]}})


def test_device_cpu_and_auto_give_identical_matrices_and_unknown_device_is_an_error(
    tmp_path: Path, prepared_dir: Path, models: dict
) -> None:
    words = PreparedData(prepared_dir).vocab()["word"].tolist()[:40]
    runs = {
        device: extract_matrices(models["base"], words, ["decontext", "input"], BASE, device=device)
        for device in ("cpu", "auto")
    }
    assert Encoder(models["base"], device="auto").device.type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    for cpu, auto in zip(runs["cpu"], runs["auto"], strict=True):
        assert cpu.name == auto.name and torch.equal(cpu.wv.weight, auto.wv.weight)
        assert auto.wv.weight.device.type == "cpu"  # matrices always come back on the CPU
    for device, message in [("tpu", "device = 'tpu'; expected 'cpu', 'cuda'"), ("cuda:99", "CUDA device")]:
        with pytest.raises(EmbedforgeError, match=message) as err:
            Encoder(models["base"], device=device)
        assert "\n" not in str(err.value)


def test_driver_logs_timings_instead_of_printing(
    tmp_path: Path, prepared_dir: Path, models: dict, caplog: pytest.LogCaptureFixture, capsys
) -> None:  # noqa: ANN001
    with caplog.at_level(logging.INFO, logger="embedforge.extract"):
        extract(replace(BASE, strategies=["input"], sources=["base"]), prepared_dir, models, tmp_path)
    assert capsys.readouterr().out == ""
    assert any(r.getMessage().startswith("input base: ") for r in caplog.records)


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


def test_vectors_strategy_and_postprocess(tmp_path: Path, prepared_dir: Path, models: dict) -> None:
    vocab = PreparedData(prepared_dir).vocab()["word"].tolist()
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
    )
    out = tmp_path / "emb"
    records = extract(params, prepared_dir, models, out)
    assert {r.name for r in records} == {"vectors_my_vectors", "input_base"}
    assert all(r.postprocess == "l2" for r in records)
    vec, inp = WordVectors.load(out / "vectors_my_vectors"), WordVectors.load(out / "input_base")
    first = torch.nn.functional.normalize(covered[vocab[0]], dim=0)
    torch.testing.assert_close(vec.weight[0], first, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vec.weight[10], inp.weight[10])  # subword policy = the input table
    assert vec.info["method"][0] == "vectors" and vec.info["method"][10] == "unknown:subword"
    assert sorted(p.name for p in out.iterdir()) == sorted(  # exports are the `export` stage's
        [f"{n}{s}" for n in ("vectors_my_vectors", "input_base") for s in (".safetensors", ".vocab.parquet")]
        + ["index.json"]
    )


def test_extra_word_files_of_every_kind(tmp_path: Path) -> None:
    (tmp_path / "sim.tsv").write_text("老虎\t猫\t7.35\nBig\tHouse\t3\n", encoding="utf-8")
    (tmp_path / "analogy.txt").write_text(": capital\n雅典 希腊 北京 中国\n", encoding="utf-8")
    (tmp_path / "bare.txt").write_text("雅典 希腊 北京 中国\n", encoding="utf-8")  # no section line
    (tmp_path / "plain.txt").write_text("好吃\n\nZebra\n", encoding="utf-8")
    assert benchmark_words(tmp_path / "sim.tsv") == ["老虎", "猫", "Big", "House"]
    assert benchmark_words(tmp_path / "sim.tsv", lowercase=True) == ["老虎", "猫", "big", "house"]
    assert benchmark_words(tmp_path / "analogy.txt") == ["雅典", "希腊", "北京", "中国"]
    assert benchmark_words(tmp_path / "bare.txt") == ["雅典", "希腊", "北京", "中国"]
    assert benchmark_words(tmp_path / "plain.txt", lowercase=True) == ["好吃", "zebra"]
    (tmp_path / "two.txt").write_text("好吃\n很 好吃\n", encoding="utf-8")
    with pytest.raises(EmbedforgeError, match="two.txt line 2: expected one word per line"):
        benchmark_words(tmp_path / "two.txt")
    for path in ExtractParams().extra_words:  # the default run's benchmark files
        words = benchmark_words(ROOT / path)
        assert words and not any(w.replace(".", "").isdigit() for w in words)


def test_a_header_row_is_read_the_same_by_extract_and_evaluate(tmp_path: Path, prepared_dir: Path) -> None:
    path = tmp_path / "sim.tsv"
    path.write_text("word1\tword2\tscore\n老虎\tCat\t7.35\n", encoding="utf-8")
    pairs = read_pairs(path, lowercase=True)  # evaluate's reader
    assert [(p.word1, p.word2, p.line) for p in pairs] == [("老虎", "cat", 2)]
    vocab = build_vocabulary(PreparedData(prepared_dir), [path])  # extract's reader
    corpus = set(PreparedData(prepared_dir).vocab()["word"])
    added = vocab.words[len(corpus) :]
    assert added == [w for w in ("老虎", "cat") if w not in corpus] and "word1" not in vocab.words
    # a non-numeric score after the first row is an error in both
    path.write_text("老虎\tcat\t7.35\nword1\tword2\tscore\n", encoding="utf-8")
    for read in (read_pairs, lambda p: build_vocabulary(PreparedData(prepared_dir), [p])):
        with pytest.raises(
            EmbedforgeError, match=r"sim.tsv line 2: the score \(field 3\) is not a finite number"
        ):
            read(path)


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
        (dict(device="gpu"), "device = 'gpu'; expected 'cpu', 'cuda', 'cuda:<index>' or 'auto'"),
    ],
)
def test_bad_input_one_line_error_and_no_output(
    tmp_path: Path, prepared_dir: Path, tiny_model_dir: Path, change: dict, message: str
) -> None:
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    root = prepared_dir
    if change.pop("vocab", None):
        root = tmp_path / "prepared"
        shutil.copytree(prepared_dir, root)
        pd.DataFrame({"word": pd.Series([], dtype=str), "count": pd.Series([], dtype="int64")}).to_parquet(
            root / "vocab.parquet"
        )
    model = _no_weights(tmp_path, tiny_model_dir) if change.pop("model", None) else tiny_model_dir
    device = change.pop("device", "cpu")
    change = {k: [str(tmp_path / f) for f in v] if k == "extra_words" else v for k, v in change.items()}
    with pytest.raises(EmbedforgeError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        run_extract(
            replace(BASE, **change),
            prepared=PreparedData(root),
            model_dirs={"base": model, "finetuned": model},
            out_dir=tmp_path / "out",
            progress=False,
            device=device,
        )
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_registry_lists_every_strategy_of_the_issue() -> None:
    assert set(STRATEGIES) == {"cls", "input", "decontext", "aggregate", "vectors", "word2vec"}


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
    tmp_path: Path, prepared_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    project = _project(tmp_path, prepared_dir, tiny_model_dir, "  strategies: [input]\n  extra_words: []\n")
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


@pytest.mark.parametrize("source", SOURCES)
def test_aggregate_alone_encodes_fallback_words_itself(
    tmp_path: Path, default_run: Path, prepared_dir: Path, models: dict, extra_file: Path, source: str
) -> None:
    params = replace(BASE, strategies=["aggregate"], sources=[source], extra_words=[str(extra_file)])
    extract(params, prepared_dir, models, tmp_path)
    alone = WordVectors.load(tmp_path / f"aggregate_{source}_L2")
    torch.testing.assert_close(alone.weight, WordVectors.load(default_run / f"aggregate_{source}_L2").weight)


def test_finetuned_classifier_folder_loads_its_encoder(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

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


@pytest.mark.parametrize("source", SOURCES)
def test_word_cut_by_truncation_is_not_a_context(models: dict, source: str) -> None:
    enc = Encoder(models[source])
    (ids, spans), (full, whole) = enc.encode([["很", "好吃"], ["很", "好"]])
    assert len(enc.piece_ids(["好吃"])[0]) >= 2  # so truncation can cut it
    enc.max_length = len(ids) - 1  # the last piece of 好吃 no longer fits
    (cut_ids, cut_spans), _ = enc.encode([["很", "好吃"], ["很", "好"]])
    assert len(cut_ids) == enc.max_length and cut_spans == [spans[0], None]
    enc.max_length = len(full)  # exactly full
    assert enc.encode([["很", "好"]])[0][1] == whole  # a word that fits entirely is kept


def test_aggregate_marks_words_without_pieces_as_empty(
    tmp_path: Path, prepared_dir: Path, models: dict
) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("\u200b\n", encoding="utf-8")  # WordPiece gives this word no piece at all
    params = replace(
        BASE, strategies=["aggregate"], sources=["base"], layers="last", extra_words=[str(extra)]
    )
    extract(params, prepared_dir, models, tmp_path / "out")
    wv = WordVectors.load(tmp_path / "out" / "aggregate_base_L2")
    row = wv.index["\u200b"]
    assert wv.info["method"][row] == "empty"
    assert not wv.weight[row].any()


def test_albert_factorised_embedding_is_projected_to_hidden_size(
    tiny_albert_model_dir: Path, prepared_dir: Path
) -> None:
    """ALBERT's 16-wide token table goes through embedding_hidden_mapping_in: every matrix is 32 wide."""
    data = PreparedData(prepared_dir)
    words = build_vocabulary(data, []).words
    matrices = extract_matrices(
        tiny_albert_model_dir,
        words,
        ["input", "decontext", "cls", "aggregate"],
        replace(BASE, layers="last"),
        corpus=data.sentences("train"),
        source="base",
        progress=False,
    )
    assert [m.name for m in matrices] == ["input_base", "decontext_base_L2", "cls_base", "aggregate_base_L2"]
    assert {tuple(m.wv.weight.shape) for m in matrices} == {(len(words), 32)}
    net, tok = (
        AutoModel.from_pretrained(tiny_albert_model_dir).eval(),
        AutoTokenizer.from_pretrained(tiny_albert_model_dir),
    )
    word = "好吃"
    states = alone_states(net, tok, word)
    pieces = tok(word, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        projected = net.encoder.embedding_hidden_mapping_in(net.get_input_embeddings().weight[pieces]).mean(0)
    expected = {
        "input_base": projected,
        "decontext_base_L2": states[2][0, 1:-1].mean(0),
        "cls_base": states[-1][0, 0],
    }
    for m in matrices[:3]:
        torch.testing.assert_close(m.wv.weight[m.wv.index[word]], expected[m.name], atol=1e-5, rtol=1e-4)


def test_a_factorised_embedding_without_a_known_projection_is_a_one_line_error(
    tiny_albert_model_dir: Path,
) -> None:
    encoder = Encoder(tiny_albert_model_dir)
    del encoder.model.encoder.embedding_hidden_mapping_in
    with pytest.raises(EmbedforgeError, match=r"input embeddings are 16 wide but hidden_size is 32"):
        encoder.input_table()


TEMPLATE = "这个词是“{w}”。"


def templated_states(
    net, tok, template: str | None, word: str
) -> tuple[tuple[torch.Tensor, ...], list[bool]]:  # noqa: ANN001
    """hidden_states of the word inside the template, pre-split as [before, word, after] (batch 1), and
    for each position whether it is one of the word's pieces."""
    before, _, after = (template or "{w}").partition("{w}")
    parts = [x for x in (before, word, after) if x]
    enc = tok(parts, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        states = net(**enc, output_hidden_states=True).hidden_states
    return states, [w is not None and w == int(bool(before)) for w in enc.word_ids(0)]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("template", "positions"), [(TEMPLATE, "all"), (TEMPLATE, "word"), (None, "all")])
def test_template_and_positions_equal_a_plain_forward_pass(
    models: dict, nets: dict, source: str, template: str | None, positions: str
) -> None:
    words = ["好吃", "味道", EXTRA_WORD]
    cfg = replace(BASE, layers=[1, 2], template=template, positions=positions, center=True)  # type: ignore[arg-type]
    decontext, cls = extract_matrices(models[source], words, ["decontext", "cls"], cfg, progress=False)
    expected, bare_cls = [], []
    for word in words:
        states, owner = templated_states(*nets[source], template, word)
        keep = [True] * len(owner) if positions == "all" else owner
        expected.append(((states[1] + states[2]) / 2)[0, torch.tensor(keep)].mean(0))
        bare_cls.append(alone_states(*nets[source], word)[-1][0, 0])
    raw = torch.stack(expected)
    torch.testing.assert_close(decontext.wv.weight, raw - raw.mean(0), atol=1e-5, rtol=1e-4)
    assert decontext.postprocess == "center"
    # cls stays the tutorial baseline: the bare word's [CLS], never templated nor post-processed
    torch.testing.assert_close(cls.wv.weight, torch.stack(bare_cls), atol=1e-5, rtol=1e-4)
    assert cls.postprocess == "none" and cls.record().postprocess == "none"


def test_cls_with_a_template_runs_the_bare_pass_once_more(models: dict) -> None:
    from embedforge.core.encoder import AloneSettings, Encoder
    from embedforge.extract.source import SourcePass

    words = ["好吃", "味道"]
    plain = SourcePass(Encoder(models["base"]), words, replace(BASE, positions="all"))
    assert plain.bare is plain.decontext  # no template: cls and decontext share one pass
    templated = SourcePass(Encoder(models["base"]), words, replace(BASE, template=TEMPLATE))
    assert templated.bare is not templated.decontext
    assert set(templated._passes) == {AloneSettings(TEMPLATE, "word"), AloneSettings(None, "word")}


@pytest.mark.parametrize("template", ["没有词", "{w}和{w}", ""])
def test_a_template_without_exactly_one_slot_is_a_one_line_error(models: dict, template: str) -> None:
    with pytest.raises(EmbedforgeError, match=r"extract.template = .*expected text with exactly one \{w\}"):
        parse_params({"extract": {"template": template}})
    with pytest.raises(EmbedforgeError, match="exactly one"):
        extract_matrices(models["base"], ["好吃"], ["decontext"], replace(BASE, template=template))
    with pytest.raises(EmbedforgeError, match="extract.positions = 'cls' is not valid"):
        parse_params({"extract": {"positions": "cls"}})


def test_default_params_are_the_selected_configuration() -> None:
    from embedforge.core.params import load_params

    cfg = load_params(ROOT / "params.yaml").extract
    assert cfg == ExtractParams()  # params.yaml and the schema's defaults agree
    assert (cfg.template, cfg.positions, cfg.layers, cfg.center) == (TEMPLATE, "all", [3, 4], True)
    assert cfg.extra_templates == TEMPLATE_ENSEMBLES["zh"] and len(cfg.extra_templates) == 4
    study = load_params(ROOT / "params" / "study.yaml").extract
    assert (study.template, study.layers, study.center) == (None, "all", False)


def test_aggregate_warns_when_most_words_fall_back_to_decontext(
    tiny_model_dir: Path, prepared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = PreparedData(prepared_dir)
    words = build_vocabulary(data, []).words[:20]
    cfg = replace(BASE, layers="last")
    with caplog.at_level(logging.WARNING, logger="embedforge"):
        extract_matrices(
            tiny_model_dir, words, ["aggregate"], cfg, corpus=data.sentences("train"), progress=False
        )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with caplog.at_level(logging.WARNING, logger="embedforge"):
        (matrix,) = extract_matrices(
            tiny_model_dir, words, ["aggregate"], cfg, corpus=[[""]] * 3, progress=False
        )
    assert set(matrix.wv.info["method"]) == {"fallback:decontext"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "aggregate (model): 20 of 20 words have no context in the corpus and fall back to decontext rows; "
        "the aggregate matrices are then mostly decontext (check extract.corpus holds text)"
    ]
