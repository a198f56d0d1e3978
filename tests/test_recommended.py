"""load_recommended / recommended_path: the matrix a run's metrics/similarity.json recommends, in one call;
publish_recommended: the same files under the stable stem recommended/matrix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import embedforge
from embedforge.core import recommended
from embedforge.core.embedding import WordVectors, load_embedding
from embedforge.core.errors import EmbedforgeError

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


def test_unknown_keywords_are_refused_as_load_embedding_refuses_them(tmp_path: Path) -> None:
    root = run_folder(tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword 'pading'; expected one of unknown, seed"):
        embedforge.load_recommended(root, pading=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword 'pading'"):
        load_embedding(root / "embeddings" / "cls_finetuned", pading=True)  # type: ignore[call-arg]


def test_the_public_name_loads_neither_torch_nor_evaluate() -> None:
    code = (
        "import sys, embedforge; embedforge.load_recommended; embedforge.recommended_path; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('embedforge.evaluate')))"
    )
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(src)}
    )
    assert out.stdout.strip() == "[]"


def test_publish_puts_the_recommended_files_under_the_stable_stem(tmp_path: Path) -> None:
    root = run_folder(tmp_path)
    out = recommended.publish_recommended(root)
    assert out == root / "recommended"
    assert sorted(p.name for p in out.iterdir()) == [
        "matrix.json",
        "matrix.safetensors",
        "matrix.vocab.parquet",
    ]
    pointer = json.loads((out / "matrix.json").read_text(encoding="utf-8"))
    assert pointer == {"name": "decontext_finetuned_L3_4", "source": "embeddings/decontext_finetuned_L3_4"}
    stable = WordVectors.load(recommended.stable_path(root))
    chosen = WordVectors.load(root / "embeddings" / "decontext_finetuned_L3_4")
    assert stable.words == chosen.words
    torch.testing.assert_close(stable.weight, chosen.weight)
    # on one file system the files are hard links: no second copy on disk
    for suffix in (".safetensors", ".vocab.parquet"):
        source = root / "embeddings" / f"decontext_finetuned_L3_4{suffix}"
        assert (out / f"matrix{suffix}").samefile(source)


def test_publish_again_follows_a_new_recommendation(tmp_path: Path) -> None:
    root = run_folder(tmp_path)
    recommended.publish_recommended(root)
    (root / "metrics" / "similarity.json").write_text(json.dumps({"recommended": "cls_finetuned"}))
    recommended.publish_recommended(root)
    torch.testing.assert_close(
        WordVectors.load(root / "recommended" / "matrix").weight,
        WordVectors.load(root / "embeddings" / "cls_finetuned").weight,
    )


def test_a_run_without_a_recommendation_publishes_only_a_null_pointer(tmp_path: Path) -> None:
    out = recommended.publish_recommended(run_folder(tmp_path, chosen=None))
    assert [p.name for p in out.iterdir()] == ["matrix.json"]
    assert json.loads((out / "matrix.json").read_text(encoding="utf-8")) == {"name": None, "source": None}


def test_publish_without_the_recommended_files_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    root = run_folder(tmp_path)
    (root / "embeddings" / "decontext_finetuned_L3_4.safetensors").unlink()
    with pytest.raises(EmbedforgeError, match="decontext_finetuned_L3_4.safetensors: the recommended matrix"):
        recommended.publish_recommended(root)
    assert not (root / "recommended").exists()
