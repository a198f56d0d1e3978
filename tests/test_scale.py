"""Scale: an unlabeled corpus, a vocabulary counted in it, the device param, resumable and sharded passes.

Runs on the tiny BERT and the 80 fixture reviews; only the torchrun test starts processes (marked slow).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import Encoder
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import ExtractParams, Params, parse_params
from embedforge.core.prepared import PreparedData
from embedforge.core.text import count_words, vocab_table
from embedforge.extract import run_extract
from embedforge.extract.corpus import CorpusFiles, corpus_files
from embedforge.extract.resume import COMPLETE, AggregateSettings, pass_key
from embedforge.extract.run import extraction_vocabulary
from embedforge.extract.shard import Shard
from embedforge.fingerprint import stage_fingerprints

ROOT = Path(__file__).resolve().parents[1]
# aggregate alone, small windows so that a pass has several, few contexts so that selection matters
AGG = ExtractParams(
    strategies=["aggregate"],
    sources=["base"],
    extra_words=[],
    max_contexts=3,
    corpus_window=8,
    layers="all",  # the tiny model has 2 layers; the default [2, 3, 4] is the real model's
    template=None,
    positions="word",
    center=False,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def texts(prepared_dir: Path) -> list[str]:
    """The prepared train split's texts: as a corpus they must give what the split itself gives."""
    return PreparedData(prepared_dir).split("train", ["text"])["text"].tolist()


def extract(params: ExtractParams, prepared: Path, model: Path, out: Path, **kw) -> dict[str, torch.Tensor]:  # noqa: ANN003
    run_extract(
        params, prepared=PreparedData(prepared), model_dirs={"base": model}, out_dir=out, progress=False, **kw
    )
    return {p.stem: WordVectors.load(p).weight for p in sorted(out.glob("*.safetensors"))}


def write_corpus(folder: Path, texts: list[str]) -> None:
    """The same texts as four shards in four formats (file order = text order)."""
    folder.mkdir(parents=True)
    q = len(texts) // 4
    parts = [texts[:q], texts[q : 2 * q], texts[2 * q : 3 * q], texts[3 * q :]]
    (folder / "a.txt").write_text("\n".join(parts[0]) + "\n\n", encoding="utf-8")
    with gzip.open(folder / "b.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(
            json.dumps({"body": t, "id": i}, ensure_ascii=False) + "\n" for i, t in enumerate(parts[1])
        )
    pq.write_table(pa.table({"body": parts[2]}), folder / "c.parquet")
    with gzip.open(folder / "d.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(parts[3]))
    (folder / "README.md").write_text("not a corpus file\n", encoding="utf-8")


def test_a_corpus_of_shards_in_every_format_streams_the_texts_in_order(
    tmp_path: Path, texts: list[str]
) -> None:
    write_corpus(tmp_path / "c", texts)
    corpus = CorpusFiles(str(tmp_path / "c"), field="body", window=7)
    assert [f.name for f in corpus.files] == ["a.txt", "b.jsonl.gz", "c.parquet", "d.txt.gz"]
    assert list(corpus.texts()) == texts and corpus.rows() == len(texts)
    windows = list(corpus)
    assert [len(w) for w in windows[:-1]] == [7] * (len(windows) - 1) and sum(map(len, windows)) == len(texts)
    assert windows[0][0] == [w for w in windows[0]][0] and all(isinstance(t, str) for t in windows[0][0])
    assert [f.name for f in corpus_files(str(tmp_path / "c" / "*.txt*"))] == ["a.txt", "d.txt.gz"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.jsonl", '{"text": "好"}\n{oops\n', r"x.jsonl line 2: not valid JSON"),
        ("x.jsonl", '{"body": "好"}\n', r"x.jsonl line 1: expected an object with a text field 'text'"),
        ("x.txt", b"\xff\xfe bad", r"x.txt: not valid UTF-8"),
        ("x.csv", "a,b\n", r"x.csv: not a corpus file; expected a name ending in .txt"),
        ("x.parquet", None, r"x.parquet: no column 'text'"),
    ],
)
def test_bad_corpus_files_are_one_line_errors(
    tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"body": ["好"]}), path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=message) as err:
        list(CorpusFiles(str(path)).texts())
    assert "\n" not in str(err.value)
    with pytest.raises(EmbedforgeError, match="no file matches"):
        corpus_files(str(tmp_path / "none*.txt"))
    with pytest.raises(EmbedforgeError, match="no corpus file in this folder"):
        corpus_files(str(tmp_path / "empty")) if (tmp_path / "empty").mkdir() is None else None


def test_aggregate_over_the_texts_as_a_corpus_equals_aggregate_over_the_train_split(
    tmp_path: Path, prepared_dir: Path, tiny_model_dir: Path, texts: list[str]
) -> None:
    write_corpus(tmp_path / "c", texts)
    split = extract(AGG, prepared_dir, tiny_model_dir, tmp_path / "split")
    corpus = extract(
        replace(AGG, corpus=str(tmp_path / "c"), corpus_field="body"),
        prepared_dir,
        tiny_model_dir,
        tmp_path / "corpus",
    )
    assert split.keys() == corpus.keys() and len(split) == 3  # L0..L2
    for name in split:
        assert torch.equal(split[name], corpus[name]), name


def test_vocabulary_counted_in_the_corpus_with_min_count_max_size_and_a_word_list(
    tmp_path: Path, prepared_dir: Path, tiny_model_dir: Path, texts: list[str]
) -> None:
    (tmp_path / "c.txt").write_text("\n".join(texts), encoding="utf-8")
    # jieba's dict.txt format, converted by the README's one-liner (`cut -d' ' -f1`)
    (tmp_path / "words.txt").write_text("饭菜很香\n好吃\n", encoding="utf-8")
    cfg = replace(AGG, corpus=str(tmp_path / "c.txt"), vocab_from="corpus", min_count=3, max_vocab_size=20)
    extract(
        replace(cfg, extra_words=[str(tmp_path / "words.txt")]), prepared_dir, tiny_model_dir, tmp_path / "o"
    )
    vocab = WordVectors.load(tmp_path / "o" / "aggregate_base_L0.safetensors")
    counted = PreparedData(prepared_dir).vocab().query("count >= 3")  # min_count 1 there: the same counts
    assert vocab.words[:20] == counted["word"].tolist()[:20]
    assert vocab.words[20:] == ["饭菜很香"]  # 好吃 is counted already; the new word is appended with count 0
    with pytest.raises(EmbedforgeError, match="extract.vocab_from = 'corpus' but extract.corpus is null"):
        extract(replace(AGG, vocab_from="corpus"), prepared_dir, tiny_model_dir, tmp_path / "x")
    with pytest.raises(EmbedforgeError, match=r"no word occurs 999 times or more .*lower extract.min_count"):
        extract(replace(cfg, min_count=999), prepared_dir, tiny_model_dir, tmp_path / "y")


def test_counting_the_corpus_vocabulary_shows_sentences_per_second_and_eta(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, prepared_dir: Path, texts: list[str]
) -> None:
    (tmp_path / "c.txt").write_text("\n".join(texts), encoding="utf-8")
    cfg = replace(AGG, corpus=str(tmp_path / "c.txt"), vocab_from="corpus", min_count=2)
    corpus = CorpusFiles(str(tmp_path / "c.txt"), window=cfg.corpus_window)
    quiet = extraction_vocabulary(cfg, PreparedData(prepared_dir), corpus)
    assert "count words" not in capsys.readouterr().err  # no rows given: no bar
    shown = extraction_vocabulary(cfg, PreparedData(prepared_dir), corpus, rows=corpus.rows())
    bar = capsys.readouterr().err
    assert "count words: 100%" in bar and f"{corpus.rows()}/{corpus.rows()}" in bar and "sent/s" in bar
    assert shown == quiet


def test_a_ranks_share_of_rows_is_the_sentences_of_its_windows(texts: list[str], tmp_path: Path) -> None:
    assert [Shard(r, 2).share_rows(10, 3) for r in (0, 1)] == [6, 4]  # windows 3,3,3,1: ranks 0,2 / 1,3
    assert Shard(0, 1).share_rows(10, 3) == 10 and Shard(2, 3).share_rows(4, 3) == 0
    (tmp_path / "c.txt").write_text("\n".join(texts), encoding="utf-8")
    corpus = CorpusFiles(str(tmp_path / "c.txt"), window=8)
    for rank in (0, 1, 2):
        shard = Shard(rank, 3)
        assert shard.share_rows(corpus.rows(), 8) == sum(len(w) for w in shard.mine(corpus))


def test_torchrun_ranks_count_their_windows_of_the_corpus_and_sum_the_counts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prepared_dir: Path, texts: list[str]
) -> None:
    (tmp_path / "c.txt").write_text("\n".join(texts), encoding="utf-8")
    cfg = replace(AGG, corpus=str(tmp_path / "c.txt"), vocab_from="corpus", min_count=2, max_vocab_size=30)
    prepared = PreparedData(prepared_dir)
    corpus = CorpusFiles(str(tmp_path / "c.txt"), window=cfg.corpus_window)
    single = extraction_vocabulary(cfg, prepared, corpus)
    parts: dict[int, Counter[str]] = {}
    monkeypatch.setattr(Shard, "sum_counts", lambda self, counts: parts.setdefault(self.rank, counts))
    for rank in (0, 1):  # what each of 2 ranks counts before the reduction
        extraction_vocabulary(cfg, prepared, corpus, Shard(rank, 2))
    windows = list(corpus)
    for rank in (0, 1):  # window i: rank i % 2, as aggregate shares them
        assert parts[rank] == count_words(s for w in windows[rank::2] for s in w)
    assert single.words == vocab_table(parts[0] + parts[1], 2, 30)["word"].tolist()
    assert len(single) == 30 and len(windows) == 7  # 56 train texts, windows of 8


def test_editing_a_corpus_shard_changes_the_extract_fingerprint_only(
    tmp_path: Path, texts: list[str]
) -> None:
    write_corpus(tmp_path / "c", texts)
    for spec in (str(tmp_path / "c"), str(tmp_path / "c" / "*.txt*")):
        params = replace(Params(), extract=replace(ExtractParams(), corpus=spec))
        before = stage_fingerprints(params)
        shard = tmp_path / "c" / "a.txt"
        shard.write_text(shard.read_text(encoding="utf-8") + "新的一行\n", encoding="utf-8")
        after = stage_fingerprints(params)
        assert before["extract"]["corpus"] != after["extract"]["corpus"], spec
        assert {k: v for k, v in before.items() if k != "extract"} == {
            k: v for k, v in after.items() if k != "extract"
        }
    assert stage_fingerprints(Params())["extract"]["corpus"] is None


def test_device_param_defaults_to_auto_and_reaches_the_encoder(
    tmp_path: Path, prepared_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_params({}).extract.device == "auto"
    seen = []
    init = Encoder.__init__

    def spy(self: Encoder, model_dir: Path, device: str = "cpu", precision: str = "fp32") -> None:
        seen.append(device)
        init(self, model_dir, device, precision)

    monkeypatch.setattr(Encoder, "__init__", spy)
    cfg = replace(AGG, strategies=["input"])
    extract(cfg, prepared_dir, tiny_model_dir, tmp_path / "o", device="auto")
    assert seen == ["auto"]
    with pytest.raises(EmbedforgeError, match="device = 'tpu'; expected 'cpu', 'cuda'"):
        extract(cfg, prepared_dir, tiny_model_dir, tmp_path / "p", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EmbedforgeError, match="0 CUDA device"):
            extract(cfg, prepared_dir, tiny_model_dir, tmp_path / "q", device="cuda")


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_dir: Path) -> Encoder:
    return Encoder(tiny_model_dir)


def _key(cfg: ExtractParams, encoder: Encoder, corpus: Path, language: str = "zh") -> str:
    settings = AggregateSettings.of(cfg, encoder, language)
    return pass_key(settings, "base", encoder.dir, [corpus], ["好吃", "味道"])


@pytest.mark.parametrize(
    "change",
    [
        {"checkpoint_windows": 5},
        {"device": "cuda:1"},
        {"center": True},
        {"remove_top_pcs": 2, "normalize": True},
        {"strategies": ["aggregate", "word2vec", "decontext"]},
        {"template": "这个词是“{w}”。", "positions": "all"},  # only the fallback rows read them
        {"precision": "fp32"},  # on the CPU `auto` is fp32 too: the resolved precision is hashed
    ],
)
def test_the_resume_key_ignores_what_the_sums_do_not_read(
    tiny_encoder: Encoder, tmp_path: Path, change: dict
) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("好吃 味道\n", encoding="utf-8")
    assert _key(replace(AGG, **change), tiny_encoder, corpus) == _key(AGG, tiny_encoder, corpus)


@pytest.mark.parametrize(
    "change",
    [
        {"max_contexts": 4},
        {"pooling": "max"},
        {"token_budget": 1024},
        {"corpus_window": 9},
        {"layers": "last"},
        {"corpus_field": "body"},
    ],
)
def test_the_resume_key_changes_with_what_the_sums_read(
    tiny_encoder: Encoder, tmp_path: Path, change: dict
) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("好吃 味道\n", encoding="utf-8")
    assert _key(replace(AGG, **change), tiny_encoder, corpus) != _key(AGG, tiny_encoder, corpus)
    assert _key(AGG, tiny_encoder, corpus, language="en") != _key(AGG, tiny_encoder, corpus)
    before = _key(AGG, tiny_encoder, corpus)
    corpus.write_text("好吃\n", encoding="utf-8")
    assert _key(AGG, tiny_encoder, corpus) != before


def test_the_aggregate_pass_reads_no_setting_its_resume_key_leaves_out() -> None:
    source = (ROOT / "src" / "embedforge" / "extract" / "aggregate.py").read_text(encoding="utf-8")
    read = set(re.findall(r"\bcfg\.(\w+)", source))
    hashed = {f.name for f in dataclasses.fields(AggregateSettings)} | {"checkpoint_windows"}
    assert read and read <= hashed, read - hashed


def test_a_killed_corpus_pass_resumes_from_its_last_checkpoint_and_gives_the_same_bytes(
    tmp_path: Path,
    prepared_dir: Path,
    tiny_model_dir: Path,
    texts: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "c.txt").write_text("\n".join(texts), encoding="utf-8")
    cfg = replace(AGG, corpus=str(tmp_path / "c.txt"), checkpoint_windows=2)
    whole = extract(cfg, prepared_dir, tiny_model_dir, tmp_path / "whole")
    root = tmp_path / "ckpt"
    calls = []
    forward = Encoder.pool_batch

    def dies(self: Encoder, *args, **kw):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 5:  # mid-way: some windows checkpointed, the current one lost
            raise KeyboardInterrupt
        return forward(self, *args, **kw)

    monkeypatch.setattr(Encoder, "pool_batch", dies)
    with pytest.raises(KeyboardInterrupt):
        extract(cfg, prepared_dir, tiny_model_dir, tmp_path / "killed", checkpoint_root=root)
    (run_dir,) = root.iterdir()
    (kept,) = run_dir.iterdir()
    assert kept.name == "window-4" and (kept / COMPLETE).is_file()
    calls.clear()
    monkeypatch.setattr(
        Encoder, "pool_batch", lambda self, *a, **kw: (calls.append(1), forward(self, *a, **kw))[1]
    )
    resumed = extract(cfg, prepared_dir, tiny_model_dir, tmp_path / "resumed", checkpoint_root=root)
    full_calls = len(calls)
    calls.clear()
    extract(cfg, prepared_dir, tiny_model_dir, tmp_path / "again")
    assert full_calls < len(calls)  # the checkpointed windows were not encoded again
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
    assert not any(root.iterdir())  # a finished pass leaves no checkpoint


DRIVER = textwrap.dedent(
    """
    import json, sys
    import torch
    from embedforge.core.params import ExtractParams
    from embedforge.core.prepared import PreparedData
    from embedforge.extract import run_extract
    torch.set_num_threads(1)
    prepared, model, out, cfg = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    run_extract(ExtractParams(**cfg), prepared=PreparedData(prepared), model_dirs={"base": model},
                out_dir=out, progress=False, device="cpu")
    """
)


@pytest.mark.slow
def test_torchrun_two_cpu_processes_equal_one_process(
    tmp_path: Path, prepared_dir: Path, tiny_model_dir: Path, texts: list[str]
) -> None:
    (tmp_path / "c.txt").write_text("\n".join(texts), encoding="utf-8")
    cfg = replace(  # the vocabulary counted in the corpus: each rank counts its windows, summed
        AGG,
        strategies=["cls", "decontext", "aggregate"],
        corpus=str(tmp_path / "c.txt"),
        corpus_window=5,
        vocab_from="corpus",
        max_vocab_size=60,
    )
    single = extract(cfg, prepared_dir, tiny_model_dir, tmp_path / "one")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    args = [str(prepared_dir), str(tiny_model_dir), str(tmp_path / "two")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(driver)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*cmd, *args, json.dumps(cfg.__dict__)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    two = {p.stem: WordVectors.load(p).weight for p in sorted((tmp_path / "two").glob("*.safetensors"))}
    assert single.keys() == two.keys() and len(two) == 1 + 3 + 3
    words = [WordVectors.load(tmp_path / d / "cls_base.safetensors").words for d in ("one", "two")]
    assert words[0] == words[1] and len(words[0]) == 60
    for name in single:
        torch.testing.assert_close(two[name], single[name], rtol=1e-5, atol=1e-6, msg=name)
    contexts = [
        WordVectors.load(tmp_path / d / "aggregate_base_L2.safetensors").info["contexts"]
        for d in ("one", "two")
    ]
    assert contexts[0].tolist() == contexts[1].tolist()  # the same contexts were chosen


def test_stage_reads_the_corpus_in_prepare_language_on_the_device_param(
    tmp_path: Path,
    prepared_dir: Path,
    tiny_model_dir: Path,
    run_stage,  # noqa: ANN001
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base").symlink_to(tiny_model_dir)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prepared").symlink_to(prepared_dir)
    (tmp_path / "c.txt").write_text("don't stop\ndon't go\n", encoding="utf-8")
    extract_yaml = (
        "  strategies: [aggregate]\n  sources: [base]\n  extra_words: []\n  corpus: c.txt\n"
        "  vocab_from: corpus\n  min_count: 2\n  checkpoint_windows: 1\n  corpus_window: 1\n  layers: all\n"
    )
    params = f"prepare:\n  language: {{}}\nextract:\n{extract_yaml}  device: {{}}\n"
    (tmp_path / "params.yaml").write_text(params.format("en", "cpu"), encoding="utf-8")
    code, err = run_stage(tmp_path, "extract")
    assert code == 0, err
    # the English tokenizer keeps "don't" whole (jieba would split it)
    assert WordVectors.load(tmp_path / "embeddings" / "aggregate_base_L2").words == ["don't"]
    assert not any((tmp_path / "checkpoints" / "extract").iterdir())  # finished: no checkpoint left
    (tmp_path / "params.yaml").write_text(params.format("zh", "cpu"), encoding="utf-8")
    code, err = run_stage(tmp_path, "extract")
    assert code == 0, err
    assert "don't" not in WordVectors.load(tmp_path / "embeddings" / "aggregate_base_L2").words
    if not torch.cuda.is_available():
        (tmp_path / "params.yaml").write_text(params.format("en", "cuda"), encoding="utf-8")
        code, err = run_stage(tmp_path, "extract")
        assert code == 1 and "device = 'cuda', but this machine has 0 CUDA device(s)" in err


def test_encode_tokenizes_in_chunks_with_the_result_of_one_call(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, texts: list[str]
) -> None:
    from embedforge.core import encoder as encoder_module

    enc = Encoder(tiny_model_dir)
    sentences = [list(t) for t in texts[:10]]
    calls: list[int] = []
    tokenize = enc.tokenizer.__call__

    def counting(batch: list, **kw: object) -> object:
        calls.append(len(batch))
        return tokenize(batch, **kw)

    monkeypatch.setattr(enc, "tokenizer", counting)
    whole = enc.encode(sentences)
    monkeypatch.setattr(encoder_module, "ENCODE_CHUNK", 3)
    calls.clear()
    assert enc.encode(sentences) == whole
    assert calls == [3, 3, 3, 1]
    assert enc.encode([]) == []
