from pathlib import Path

import pytest
import yaml

from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import Params, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_yaml_is_valid_and_complete():
    data = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    # every section and key in the file round-trips to the typed object
    for section, values in data.items():
        for key, value in values.items():
            got = getattr(getattr(params, section), key)
            assert got == value or (isinstance(value, int) and got == float(value))


def test_defaults_when_empty():
    assert parse_params({}).prepare.min_count == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prepare": {"foo": 1}}, "unknown key 'prepare.foo'"),
        ({"bogus": {}}, "unknown key 'bogus'"),
        ({"finetune": {"lr": 0}}, "finetune.lr = 0.0 is out of range; expected > 0.0"),
        ({"finetune": {"lr": -1e-5}}, "finetune.lr"),
        ({"finetune": {"batch_size": 0}}, "finetune.batch_size = 0 is out of range"),
        ({"finetune": {"batch_size": "8"}}, "finetune.batch_size = '8' is not valid; expected an integer"),
        ({"prepare": {"min_count": True}}, "prepare.min_count"),
        ({"prepare": {"format": "xls"}}, "expected one of 'auto', 'csv'"),
        ({"prepare": {"train_ratio": 0.5}}, "expected 1"),
        ({"prepare": []}, "prepare = [] is not valid; expected a mapping"),
    ],
)
def test_bad_params_are_one_line_errors(data, message):
    with pytest.raises(EmbedforgeError) as err:
        parse_params(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_int_accepted_for_float():
    assert parse_params({"finetune": {"epochs": 2}}).finetune.epochs == 2.0


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(EmbedforgeError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("prepare: [1,\n", encoding="utf-8")
    with pytest.raises(EmbedforgeError, match="not valid YAML"):
        load_params(bad)


def test_scientific_notation_as_dvc_exp_writes_it(tmp_path):
    # `dvc exp run -S finetune.lr=2e-5` writes `lr: 2e-05`, which PyYAML reads as a string.
    path = tmp_path / "params.yaml"
    path.write_text("finetune:\n  lr: 2e-05\n  weight_decay: 1E-2\n", encoding="utf-8")
    p = load_params(path).finetune
    assert p.lr == 2e-5 and p.weight_decay == 0.01
    with pytest.raises(EmbedforgeError, match="finetune.lr = 'fast'"):
        parse_params({"finetune": {"lr": "fast"}})
    with pytest.raises(EmbedforgeError, match="finetune.batch_size = '1e3'"):
        parse_params({"finetune": {"batch_size": "1e3"}})
