"""load_recommended / recommended_path: the matrix a run's metrics/similarity.json recommends, in one call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import embedforge
from embedforge.core.embedding import WordVectors, load_embedding
from embedforge.core.errors import EmbedforgeError
from embedforge.evaluate import recommended

WORDS = ["好吃", "难吃", "味道", "外卖"]


def run_folder(root: Path, chosen: str | None = "decontext_finetuned_L3_4") -> Path:
    """A run's outputs as the pipeline lays them out: two matrices, similarity.json naming one."""
    for i, name in enumerate(["cls_finetuned", "decontext_finetuned_L3_4"]):
        weight = torch.randn(len(WORDS), 6, generator=torch.Generator().manual_seed(i))
        WordVectors(WORDS, weight).save(root / "embeddings" / name)
    similarity: dict[str, object] = {"cls_finetuned": {}, "decontext_finetuned_L3_4": {}}
    if chosen is not None:
        similarity |= {"recommended": chosen, "selection": {"rule": "dev half"}}
    (root / "metrics").mkdir()
    (root / "metrics" / "similarity.json").write_text(json.dumps(similarity), encoding="utf-8")
    return root


def test_it_is_public_and_loads_what_load_embedding_loads_for_the_recommended_matrix(tmp_path: Path) -> None:
    assert embedforge.load_recommended is recommended.load_recommended
    assert embedforge.recommended_path is recommended.recommended_path
    assert {"load_recommended", "recommended_path"} <= set(embedforge.__all__)
    root = run_folder(tmp_path)
    emb, vocab = embedforge.load_recommended(root, padding=True, words=["没见过"])
    want, want_vocab = load_embedding(
        root / "embeddings" / "decontext_finetuned_L3_4", padding=True, words=["没见过"]
    )
    torch.testing.assert_close(emb.weight, want.weight)
    assert vocab.words == want_vocab.words and vocab.pad_index == want_vocab.pad_index == len(WORDS) + 2
    assert embedforge.recommended_path(root) == root / "embeddings" / "decontext_finetuned_L3_4"
    other = load_embedding(root / "embeddings" / "cls_finetuned")[0]
    assert not torch.equal(emb.weight[: len(WORDS)], other.weight[: len(WORDS)])


def test_the_default_root_is_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(run_folder(tmp_path))
    emb, vocab = embedforge.load_recommended()
    assert tuple(emb.weight.shape) == (len(WORDS) + 1, 6) and vocab.words == WORDS
    wv = WordVectors.load(embedforge.recommended_path())
    assert [w for w, _ in wv.most_similar("好吃", topn=3)] != []


def _one_line_error(root: Path) -> str:
    with pytest.raises(EmbedforgeError) as info:
        embedforge.load_recommended(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_without_metrics_the_error_says_to_run_the_pipeline(tmp_path: Path) -> None:
    message = _one_line_error(tmp_path)
    assert "metrics/similarity.json" in message and "run dvc repro first" in message


def test_a_run_without_a_recommendation_points_at_load_embedding(tmp_path: Path) -> None:
    message = _one_line_error(run_folder(tmp_path, chosen=None))
    assert "'recommended'" in message and "load_embedding" in message


def test_a_missing_recommended_matrix_is_named(tmp_path: Path) -> None:
    root = run_folder(tmp_path)
    (root / "embeddings" / "decontext_finetuned_L3_4.safetensors").unlink()
    message = _one_line_error(root)
    assert "decontext_finetuned_L3_4" in message and "run dvc repro first" in message


def test_a_wrong_type_is_an_error_naming_the_key(tmp_path: Path) -> None:
    root = run_folder(tmp_path)
    (root / "metrics" / "similarity.json").write_text(json.dumps({"recommended": 3}), encoding="utf-8")
    assert "recommended = 3" in _one_line_error(root)


def test_the_committed_run_s_recommendation_is_the_path_it_resolves_to(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[1] / "metrics" / "similarity.json"
    name = json.loads(committed.read_text(encoding="utf-8"))["recommended"]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "similarity.json").write_bytes(committed.read_bytes())
    WordVectors(WORDS, torch.zeros(len(WORDS), 2)).save(tmp_path / "embeddings" / name)
    assert embedforge.recommended_path(tmp_path) == tmp_path / "embeddings" / name
