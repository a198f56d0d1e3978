"""Shared fixtures: a tiny BERT built from a config, and a small labelled Chinese dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).parent / "fixtures"
REVIEWS = FIXTURES / "reviews.csv"


@pytest.fixture(scope="session")
def reviews_csv() -> Path:
    """80 labelled Chinese reviews (two classes)."""
    return REVIEWS


def build_tiny_model(out: Path, texts: list[str], layers: int = 2, hidden: int = 32) -> Path:
    """Save a randomly initialised tiny BERT with a character vocabulary covering `texts`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    chars = sorted({c for t in texts for c in t if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *"abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab = list(dict.fromkeys(vocab))
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 ignores `vocab_file` (an empty 5-token tokenizer): pass the vocabulary itself
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)})
    tokenizer.save_pretrained(out)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=160,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny BERT (2 layers, hidden 32): config.json, model.safetensors, tokenizer."""
    texts = pd.read_csv(REVIEWS)["review"].astype(str).tolist()
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"), texts)


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """`data/prepared/` built by the real `prepare` code from the 80 fixture reviews (min_count 1)."""
    from embedforge.core.models import load_tokenizer
    from embedforge.core.params import PrepareParams
    from embedforge.prepare import prepare

    out = tmp_path_factory.mktemp("prepared-root") / "prepared"
    params = PrepareParams(
        input=str(REVIEWS),
        max_length=64,
        min_count=1,
        train_ratio=0.7,
        validation_ratio=0.15,
        test_ratio=0.15,
    )
    prepare(params, load_tokenizer(tiny_model_dir), out, cache_dir=tmp_path_factory.mktemp("jieba"))
    return out


@pytest.fixture
def run_stage(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run `stages/<name>.py` as `python stages/<name>.py` would, in-process (a subprocess costs ~10 s).

    Call it as run_stage(project_dir, "prepare") -> (exit_code, stderr).
    """
    import runpy

    def _run(project: Path, stage: str) -> tuple[int, str]:
        monkeypatch.chdir(project)
        code = 0
        try:
            runpy.run_path(str(ROOT / "stages" / f"{stage}.py"), run_name="__main__")
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, capsys.readouterr().err

    return _run


def build_tiny_bpe_model(out: Path, texts: list[str], layers: int = 2, hidden: int = 32) -> Path:
    """Save a randomly initialised tiny RoBERTa with a byte-level BPE tokenizer trained on `texts`.

    Not WordPiece: words get a leading `Ġ` piece (add_prefix_space, as pre-split input needs) and
    Chinese characters split into byte pieces unless merged.
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer(add_prefix_space=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(
        texts, vocab_size=400, min_frequency=2, special_tokens=specials, show_progress=False
    )
    bpe.save_model(str(out))  # vocab.json + merges.txt
    tokenizer = RobertaTokenizerFast(
        vocab=str(out / "vocab.json"),
        merges=str(out / "merges.txt"),
        add_prefix_space=True,
        model_max_length=160,
    )
    tokenizer.save_pretrained(out)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=160 + 2,  # RoBERTa positions start after the padding index
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bpe_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny RoBERTa (2 layers, hidden 32) and a byte-level BPE fast tokenizer."""
    texts = pd.read_csv(REVIEWS)["review"].astype(str).tolist()
    return build_tiny_bpe_model(tmp_path_factory.mktemp("tiny-bpe"), texts)


def build_tiny_albert_model(out: Path, texts: list[str], layers: int = 2, hidden: int = 32) -> Path:
    """Save a randomly initialised tiny ALBERT (factorised embedding: 16-wide token table, hidden 32)."""
    import torch
    from transformers import AlbertConfig, AlbertModel

    build_tiny_model(out, texts, layers, hidden)  # the character vocabulary and WordPiece tokenizer
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    config = AlbertConfig(
        vocab_size=len(vocab),
        embedding_size=hidden // 2,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=160,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    AlbertModel(config).save_pretrained(out)  # replaces the BERT's config.json and weights
    return out


@pytest.fixture(scope="session")
def tiny_albert_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny ALBERT (2 layers, hidden 32, embedding 16) and a WordPiece tokenizer."""
    texts = pd.read_csv(REVIEWS)["review"].astype(str).tolist()
    return build_tiny_albert_model(tmp_path_factory.mktemp("tiny-albert"), texts)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models run faster on one thread, and the shared 2-core box does not thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
