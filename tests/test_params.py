import dataclasses
import re
import typing
from pathlib import Path

import pytest

from embedforge.core import device, embedding, encoder
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import POOLINGS, PRECISIONS, UNKNOWN_POLICIES, Params, load_params, parse_params
from embedforge.core.profiles import PROFILES, SELECTION_SETS, TEMPLATE_AUTO, TEMPLATE_ENSEMBLES, TEMPLATES
from embedforge.core.schema import read_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_yaml_is_valid_and_complete():
    data = read_yaml(ROOT / "params.yaml")
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    # every section and key in the file round-trips to the typed object
    for section, values in data.items():
        if not isinstance(values, dict):  # a top-level key (lr)
            assert getattr(params, section) == values
            continue
        for key, value in values.items():
            got = getattr(getattr(params, section), key)
            if value is None and key in PROFILES[params.prepare.language].get(section, {}):
                value = PROFILES[params.prepare.language][section][key]  # null = the language's default
            if value == TEMPLATE_AUTO and key == "template":
                value = TEMPLATES[params.prepare.language]
            if value == TEMPLATE_AUTO and key == "extra_templates":
                value = TEMPLATE_ENSEMBLES[params.prepare.language]
            if value is None and key == "selection_set":
                value = SELECTION_SETS[params.prepare.language]
            assert got == value or (isinstance(value, int) and got == float(value))


def test_defaults_when_empty():
    assert parse_params({}).prepare.min_count == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prepare": {"foo": 1}}, "unknown key 'prepare.foo'"),
        ({"bogus": {}}, "unknown key 'bogus'"),
        ({"lr": 0}, "params.yaml: lr = 0.0 is out of range; expected > 0.0"),
        ({"lr": -1e-5}, "params.yaml: lr = -1e-05"),
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


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"finetune": {"lr": 1e-4}}, "params.yaml: unknown key 'finetune.lr'; did you mean 'lr'?"),
        ({"lrr": 1e-4}, "params.yaml: unknown key 'lrr'; did you mean 'lr'?"),
        (
            {"finetune": {"seeed": 1}},
            "params.yaml: unknown key 'finetune.seeed'; did you mean 'finetune.seed'?",
        ),
        ({"finetune": {"pooling": "max"}}, "unknown key 'finetune.pooling'; did you mean 'extract.pooling'?"),
        (
            {"extract": {"stratgies": []}},
            "unknown key 'extract.stratgies'; did you mean 'extract.strategies'?",
        ),
        ({"finetun": {}}, "params.yaml: unknown key 'finetun'; did you mean 'finetune'?"),
        ({"prepare": {"zzz": 1}}, "params.yaml: unknown key 'prepare.zzz'; expected one of: format, input,"),
    ],
)
def test_an_unknown_key_names_the_closest_real_key(data, message):
    with pytest.raises(EmbedforgeError) as err:
        parse_params(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_every_field_has_user_facing_help():
    for section in dataclasses.fields(Params):
        assert section.metadata.get("help"), section.name
        if not dataclasses.is_dataclass(section.default):  # a top-level key (lr)
            assert not re.search(r"issue \d|bench/|README", section.metadata["help"])
            continue
        for f in dataclasses.fields(type(section.default)):
            text = f.metadata.get("help", "")
            assert len(text) > 10, f"{section.name}.{f.name} has no help text"
            assert not re.search(r"issue \d|bench/|README", text), f"{section.name}.{f.name}: {text}"


@pytest.mark.parametrize(
    ("section", "key", "names"),
    [
        ("extract", "pooling", POOLINGS),
        ("extract", "unknown", UNKNOWN_POLICIES),
        ("extract", "precision", PRECISIONS),
    ],
)
def test_the_choices_code_checks_against_are_the_ones_the_schema_accepts(section, key, names):
    cls = type(getattr(Params(), section))
    assert typing.get_args(typing.get_type_hints(cls)[key]) == names
    assert encoder.POOLINGS is POOLINGS and embedding.UNKNOWN_POLICIES is UNKNOWN_POLICIES
    assert device.PRECISIONS is PRECISIONS


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
    # `dvc exp run -S lr=2e-5` writes `lr: 2e-05`, a string to a YAML 1.1 reader (PyYAML).
    path = tmp_path / "params.yaml"
    path.write_text("lr: 2e-05\nfinetune:\n  weight_decay: 1E-2\n", encoding="utf-8")
    params = load_params(path)
    assert params.lr == 2e-5 and params.finetune.weight_decay == 0.01
    with pytest.raises(EmbedforgeError, match="lr = 'fast'"):
        parse_params({"lr": "fast"})
    with pytest.raises(EmbedforgeError, match="finetune.batch_size = '1e3'"):
        parse_params({"finetune": {"batch_size": "1e3"}})


def _fields_of_type(tp: type) -> list[str]:
    """`section.key` (or a top-level `key`) of every field of type `tp` in params.yaml."""
    import dataclasses
    import typing

    keys = []
    for section, cls in typing.get_type_hints(Params).items():
        if not dataclasses.is_dataclass(cls):
            keys += [section] if cls is tp else []
            continue
        keys += [f"{section}.{name}" for name, hint in typing.get_type_hints(cls).items() if hint is tp]
    return keys


FLOAT_KEYS = _fields_of_type(float)
SEED_KEYS = [k for k in _fields_of_type(int) if k.endswith(".seed")]


def _load_one(tmp_path: Path, key: str, value: str):
    """load_params on a params.yaml that sets only `key` to the YAML text `value`."""
    path = tmp_path / "params.yaml"
    if "." not in key:  # a top-level key
        path.write_text(f"{key}: {value}\n", encoding="utf-8")
        return getattr(load_params(path), key)
    section, name = key.split(".")
    path.write_text(f"{section}:\n  {name}: {value}\n", encoding="utf-8")
    return getattr(getattr(load_params(path), section), name)


def test_every_float_and_seed_key_is_covered():
    assert {"lr", "finetune.epochs", "prepare.train_ratio", "evaluate.probe_lr"} <= set(FLOAT_KEYS)
    assert SEED_KEYS == [
        "prepare.seed",
        "finetune.seed",
        "curves.seed",
        "extract.seed",
        "evaluate.seed",
        "student.seed",
    ]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_non_finite_floats_are_rejected(tmp_path, key, value):
    # `lr: .inf` used to train a model of NaN weights and exit 0.
    with pytest.raises(EmbedforgeError) as err:
        _load_one(tmp_path, key, value)
    assert str(err.value).startswith(f"params.yaml: {key} = ")
    assert str(err.value).endswith("is not valid; expected a finite number")


@pytest.mark.parametrize("key", SEED_KEYS)
def test_seeds_are_range_checked(tmp_path, key):
    # numpy rejects seeds outside [0, 2**32): -1 used to crash the stage with a traceback.
    with pytest.raises(EmbedforgeError, match=rf"^params.yaml: {key} = -1 is out of range; expected >= 0$"):
        _load_one(tmp_path, key, "-1")
    with pytest.raises(EmbedforgeError, match=rf"{key} = 4294967296 is out of range; expected <= 4294967295"):
        _load_one(tmp_path, key, str(2**32))
    assert _load_one(tmp_path, key, str(2**32 - 1)) == 2**32 - 1
    assert _load_one(tmp_path, key, "0") == 0


def test_params_are_read_as_yaml_1_2_like_dvc(tmp_path):
    # DVC reads and writes params.yaml as YAML 1.2 (ruamel.yaml): `off` is text, `2e-05` a number.
    assert _load_one(tmp_path, "finetune.distributed", "off") == "off"
    assert _load_one(tmp_path, "lr", "2e-05") == 2e-5
    assert _load_one(tmp_path, "prepare.test_file", "") is None
    with pytest.raises(EmbedforgeError) as err:
        _load_one(tmp_path, "finetune.freeze_embeddings", "yes")
    assert str(err.value).startswith(
        "params.yaml: finetune.freeze_embeddings = 'yes' is not valid; expected true or false"
    )


def test_duplicate_key_is_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("finetune:\n  seed: 1\n  seed: 2\n", encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=r"params.yaml line 3: not valid YAML \(found duplicate key"):
        load_params(path)


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (
            {"train_file": "a.csv", "validation_file": "b.csv", "test_file": "c.csv"},
            "prepare.input (data/raw/waimai_10k.csv) and the three split files are both set; "
            "set either input or train_file/validation_file/test_file (and input: null)",
        ),
        ({"input": None, "train_file": "a.csv"}, "must be set together"),
        ({"input": None}, "prepare.input is empty"),
    ],
)
def test_data_source_is_input_or_a_fixed_split(prepare, message):
    with pytest.raises(EmbedforgeError) as err:
        parse_params({"prepare": prepare})
    assert message in str(err.value) and "ratio" not in str(err.value)


def test_fixed_split_ignores_ratios():
    files = {"train_file": "a.csv", "validation_file": "b.csv", "test_file": "c.csv"}
    p = parse_params({"prepare": {"input": None, "train_ratio": 0.5, **files}}).prepare
    assert p.split_files == {"train": "a.csv", "validation": "b.csv", "test": "c.csv"}
