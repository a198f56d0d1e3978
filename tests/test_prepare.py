import json
import logging
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
import yaml

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import read_parquet
from embedforge.core.models import load_tokenizer
from embedforge.core.params import PrepareParams
from embedforge.core.text import build_vocab, segment_text
from embedforge.prepare import prepare
from embedforge.prepare.clean import CleanReport, clean, label_key, read_table, stratified_split

ROOT = Path(__file__).resolve().parents[1]
REVIEWS = Path(__file__).parent / "fixtures" / "reviews.csv"


def _params(path: Path, **kw) -> PrepareParams:
    return PrepareParams(input=str(path), text_column="review", label_column="label", **kw)


@pytest.fixture
def dirty_csv(tmp_path, reviews_csv) -> Path:
    df = pd.read_csv(reviews_csv)
    extra = pd.DataFrame(
        {
            "label": [1, 1, 0, 1, 0, 1],
            "review": [
                "\ufeff很好吃",
                "  很好吃  ",
                "   ",
                df.review[0] + "!",
                df.review[0] + "!",
                "ｆｕｌｌ　ｗｉｄｔｈ",
            ],
        }
    )
    out = tmp_path / "dirty.csv"
    pd.concat([df, extra]).to_csv(out, index=False)
    return out


def test_prepare_outputs_and_counts(tmp_path, dirty_csv, tiny_model_dir):
    out = tmp_path / "prepared"
    metrics = prepare(_params(dirty_csv), load_tokenizer(tiny_model_dir), out, cache_dir=tmp_path / "jieba")
    c = metrics["cleaning"]
    assert c["rows_read"] == 86
    assert c["bom_removed"] == 1
    assert c["whitespace_stripped"] == 2  # the BOM row is counted once, as a BOM
    fixture = pd.read_csv(dirty_csv).review.fillna("").astype(str)
    assert c["changed_by_nfkc"] == (fixture != fixture.map(lambda t: unicodedata.normalize("NFKC", t))).sum()
    assert c["changed_by_nfkc"] > 1  # the full-width row and the full-width punctuation of the reviews
    assert c["dropped_empty_text"] == 1
    assert c["dropped_conflicting_label"] == 2
    assert c["dropped_duplicate"] == 1  # "很好吃" twice once BOM and spaces are gone
    assert c["rows_kept"] == 86 - 1 - 2 - 1 == sum(metrics["rows"].values())
    splits = {s: read_parquet(out / f"{s}.parquet") for s in ("train", "validation", "test")}
    assert list(splits["train"].columns) == ["text", "label", "input_ids", "length", "words"]
    texts = [set(df.text) for df in splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    for df in splits.values():
        assert set(df.label) == {0, 1}  # stratified: both classes everywhere
        assert (df.length == df.input_ids.map(len)).all()
        assert df.length.max() <= 128
    assert "full width" in set(pd.concat(splits.values()).text)
    assert json.loads((out / "labels.json").read_text())["names"] == ["0", "1"]
    vocab = read_parquet(out / "vocab.parquet")
    assert list(vocab.columns) == ["word", "count"]
    assert vocab["count"].is_monotonic_decreasing and vocab["count"].min() >= 2
    assert metrics["token_length"]["train"]["p50"] > 2
    assert (tmp_path / "jieba" / "jieba.cache").is_file()


def test_prepare_is_deterministic(tmp_path, reviews_csv, tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    a = prepare(_params(reviews_csv, seed=3), tok, tmp_path / "a", cache_dir=tmp_path / "j")
    b = prepare(_params(reviews_csv, seed=3), tok, tmp_path / "b", cache_dir=tmp_path / "j")
    assert a == b
    assert read_parquet(tmp_path / "a/test.parquet").equals(read_parquet(tmp_path / "b/test.parquet"))


def test_truncation_is_counted(tmp_path, reviews_csv, tiny_model_dir):
    m = prepare(
        _params(reviews_csv, max_length=8),
        load_tokenizer(tiny_model_dir),
        tmp_path / "p",
        cache_dir=tmp_path / "j",
    )
    assert m["token_length"]["train"]["max"] == 8 and m["truncated"]["train"] > 0


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_formats(tmp_path, reviews_csv, fmt):
    df = pd.read_csv(reviews_csv)
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(path)
    got = read_table(path, "review", "label")
    assert len(got) == 80 and got.text.iloc[0] == df.review.iloc[0]


def _prepare_fixed_split(tmp_path, tokenizer_dir, train, validation, test) -> dict:
    """Write the three frames as CSV files and run prepare on them as a fixed split."""
    files = {}
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        files[name] = tmp_path / f"{name}.csv"
        part.to_csv(files[name], index=False)
    p = PrepareParams(
        input=None,
        train_file=str(files["train"]),
        validation_file=str(files["validation"]),
        test_file=str(files["test"]),
    )
    return prepare(p, load_tokenizer(tokenizer_dir), tmp_path / "out", cache_dir=tmp_path / "j")


def test_fixed_split_drops_cross_split_texts(tmp_path, reviews_csv, tiny_model_dir):
    df = pd.read_csv(reviews_csv)
    m = _prepare_fixed_split(tmp_path, tiny_model_dir, df[:50], df[50:65], pd.concat([df[65:], df[:3]]))
    assert m["cleaning"]["dropped_cross_split"] == 3
    assert m["rows"] == {"train": 50, "validation": 15, "test": 15}


def test_stratified_split_proportions():
    df = pd.DataFrame({"text": [str(i) for i in range(100)], "label": ["a"] * 70 + ["b"] * 30})
    parts = stratified_split(df, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=0)
    assert [len(p) for p in parts.values()] == [80, 10, 10]
    assert (parts["test"].label == "b").sum() == 3


def test_clean_label_types():
    out = clean(pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, 2.0, float("nan")]}), CleanReport())
    assert out.label.tolist() == ["1", "2"]


def test_segmentation_and_vocab():
    assert segment_text("味道不错，送餐很快！", "zh") == ["味道", "不错", "，", "送餐", "很快", "！"]
    assert segment_text("Don't panic, 42 times", "en") == ["don't", "panic", ",", "42", "times"]
    vocab = build_vocab([["b", "a", "，"], ["a", "c"], ["b"]], min_count=1, max_size=2)
    assert vocab.word.tolist() == ["a", "b"] and vocab["count"].tolist() == [2, 2]
    with pytest.raises(EmbedforgeError, match="vocabulary is empty"):
        build_vocab([["a"]], min_count=2)


# --- bad input: one line, non-zero exit, no partial output -------------------------------------------


@pytest.fixture
def project(tmp_path, tiny_model_dir, reviews_csv) -> Path:
    """A scratch project folder with params.yaml, the data and models/base."""
    shutil.copytree(tiny_model_dir, tmp_path / "models/base")
    (tmp_path / "data").mkdir()
    shutil.copy(reviews_csv, tmp_path / "data/reviews.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": {"input": "data/reviews.csv"}}))
    return tmp_path


def _set(project: Path, section: str, **kw) -> None:
    data = yaml.safe_load((project / "params.yaml").read_text())
    data.setdefault(section, {}).update(kw)
    (project / "params.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))


def _expect_error(run_stage, project: Path, stage: str, message: str) -> None:
    code, err = run_stage(project, stage)
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert not (project / "data/prepared").exists()
    assert not (project / "metrics/prepare.json").exists()


def test_stage_runs(project):
    res = subprocess.run(
        [sys.executable, str(ROOT / "stages/prepare.py")],
        cwd=project,
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert (project / "data/prepared/train.parquet").is_file()
    assert json.loads((project / "metrics/prepare.json").read_text())["rows"]["train"] == 64


def test_missing_input_file(project, run_stage):
    _set(project, "prepare", input="data/nope.csv")
    _expect_error(run_stage, project, "prepare", "data/nope.csv: input file not found")


def test_missing_columns(project, run_stage):
    _set(project, "prepare", text_column="text")
    _expect_error(run_stage, project, "prepare", "data/reviews.csv: no column 'text' (prepare.text_column)")
    _set(project, "prepare", text_column="review", label_column="y")
    _expect_error(run_stage, project, "prepare", "no column 'y' (prepare.label_column)")


def test_not_utf8_names_the_line(project, run_stage):
    raw = (project / "data/reviews.csv").read_bytes().split(b"\n")
    raw[4] = "1,很好吃".encode("gbk")
    (project / "data/reviews.csv").write_bytes(b"\n".join(raw))
    _expect_error(run_stage, project, "prepare", "data/reviews.csv line 5: not valid UTF-8")


def test_empty_after_cleaning(project, run_stage):
    (project / "data/reviews.csv").write_text("label,review\n1,   \n0,\n", encoding="utf-8")
    _expect_error(run_stage, project, "prepare", "no rows left after cleaning")


def test_single_class(project, run_stage):
    (project / "data/reviews.csv").write_text("label,review\n1,好\n1,很好\n1,非常好\n", encoding="utf-8")
    _expect_error(run_stage, project, "prepare", "only one class ('1')")


def test_split_ratio_leaves_split_empty(project, run_stage):
    _set(project, "prepare", train_ratio=0.99, validation_ratio=0.005, test_ratio=0.005)
    _expect_error(
        run_stage, project, "prepare", "the validation split is empty; raise prepare.validation_ratio"
    )


def test_unknown_param_key(project, run_stage):
    _set(project, "prepare", min_cnt=3)
    _expect_error(run_stage, project, "prepare", "unknown key 'prepare.min_cnt'")


def test_model_without_weights(project, run_stage):
    (project / "models/base/model.safetensors").unlink()
    _expect_error(run_stage, project, "prepare", "models/base: model folder has no weights")


def test_english_data_is_segmented_by_words(tmp_path, tiny_model_dir):
    rows = [("Great food, fast delivery!", "pos"), ("The soup was COLD and bland.", "neg")] * 6
    rows += [(f"Review number {i} is fine", "pos" if i % 2 else "neg") for i in range(20)]
    path = tmp_path / "en.jsonl"
    pd.DataFrame(rows, columns=["sentence", "sentiment"]).drop_duplicates().to_json(
        path, orient="records", lines=True
    )
    p = PrepareParams(
        input=str(path),
        text_column="sentence",
        label_column="sentiment",
        language="en",
        min_count=1,
        train_ratio=0.5,
        validation_ratio=0.25,
        test_ratio=0.25,
    )
    m = prepare(p, load_tokenizer(tiny_model_dir), tmp_path / "out", cache_dir=tmp_path / "j")
    assert json.loads((tmp_path / "out/labels.json").read_text())["names"] == ["neg", "pos"]
    assert m["cleaning"]["rows_kept"] == 22
    words = set(read_parquet(tmp_path / "out/vocab.parquet").word)
    assert {"review", "number", "is", "fine"} <= words
    assert not {",", "!", "."} & words


def test_fixed_split_counts_conflicts_across_splits_as_conflicts(tmp_path, tiny_model_dir):
    df = pd.read_csv(REVIEWS)
    train, val, test = df[:50].copy(), df[50:65].copy(), df[65:].copy()
    test = pd.concat([test, train[:1].assign(label=1 - train.label.iloc[0])])  # same text, other label
    m = _prepare_fixed_split(tmp_path, tiny_model_dir, train, val, test)
    c = m["cleaning"]
    assert (c["dropped_conflicting_label"], c["dropped_cross_split"], c["dropped_duplicate"]) == (2, 0, 0)
    assert m["rows"] == {"train": 49, "validation": 15, "test": 15}


# --- inputs read as the user meant them ---------------------------------------------------------------


def test_max_length_above_the_model_limit(project, run_stage):
    # The tiny model has 160 positions; a longer max_length used to fail only in finetune, 89 lines deep.
    _set(project, "prepare", max_length=161)
    _expect_error(
        run_stage,
        project,
        "prepare",
        "params.yaml: prepare.max_length = 161 is longer than the model accepts; expected <= 160",
    )


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("1", "1"),
        ("1.0", "1"),
        (" 01 ", "1"),
        ("1e0", "1"),
        (1.0, "1"),
        (2, "2"),
        ("-0.0", "0"),
        ("0.50", "0.5"),
        ("pos", "pos"),
        ("Ｐos ", "Pos"),
        ("inf", "inf"),
        ("NaN", ""),
        ("NA", ""),
        ("n/a", ""),
        ("null", ""),
        ("None", ""),
        ("", ""),
        (float("nan"), ""),
        (None, ""),
        (pd.NA, ""),
    ],
)
def test_label_key(raw, key):
    assert label_key(raw) == key


def test_labels_as_the_user_meant_them(tmp_path, reviews_csv, tiny_model_dir):
    # The case: "1.0" was a class apart from "1", "NaN" a class, labels.json ["0","1","1.0","NaN"].
    df = pd.read_csv(reviews_csv, dtype=str)
    df.loc[:9, "label"] = df.loc[:9, "label"].map({"0": "0.0", "1": "1.0"})
    missing = ["NaN", "NA", "", "null", "None", "nan"]
    extra = pd.DataFrame({"label": missing, "review": [f"没有标签的评论{i}" for i in range(len(missing))]})
    path = tmp_path / "labels.csv"
    pd.concat([df, extra]).to_csv(path, index=False)
    m = prepare(_params(path), load_tokenizer(tiny_model_dir), tmp_path / "out", cache_dir=tmp_path / "j")
    assert json.loads((tmp_path / "out/labels.json").read_text())["names"] == ["0", "1"]
    assert m["cleaning"]["dropped_missing_label"] == len(missing)
    assert m["cleaning"]["labels_normalized"] == 10
    assert m["cleaning"]["rows_kept"] == 80
    json.dumps(m, allow_nan=False)  # strict JSON


def test_fixed_split_and_input_both_set(project, run_stage):
    for name in ("train", "validation", "test"):
        shutil.copy(project / "data/reviews.csv", project / f"data/{name}.csv")
    files = {f"{n}_file": f"data/{n}.csv" for n in ("train", "validation", "test")}
    _set(project, "prepare", **files)  # `input` is still set: it used to be ignored silently
    _expect_error(run_stage, project, "prepare", "set either input or train_file/validation_file/test_file")


def test_fixed_split_empty_split_names_the_file_not_a_ratio(project, run_stage):
    df = pd.read_csv(project / "data/reviews.csv")
    df[:60].to_csv(project / "data/train.csv", index=False)
    df[:10].to_csv(project / "data/validation.csv", index=False)  # every text already in train
    df[60:].to_csv(project / "data/test.csv", index=False)
    files = {f"{n}_file": f"data/{n}.csv" for n in ("train", "validation", "test")}
    _set(project, "prepare", input=None, **files)
    _expect_error(
        run_stage,
        project,
        "prepare",
        "data/validation.csv: the validation split is empty; no rows of prepare.validation_file are left",
    )
    assert "ratio" not in run_stage(project, "prepare")[1]


def _compress(path: Path, kind: str, out_dir: Path, extra: dict[str, bytes] | None = None) -> Path:
    """`path` as a .gz, or as the one table file of a .zip (plus `extra` members)."""
    import gzip
    import zipfile

    if kind == "gz":
        out = out_dir / f"{path.name}.gz"
        out.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        return out
    out = out_dir / f"{path.stem}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, f"inner/{path.name}")
        archive.writestr("__MACOSX/._x", b"resource fork")  # ignored, as a Mac-made archive holds one
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out


@pytest.mark.parametrize("kind", ["zip", "gz"])
@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_compressed_inputs_read_like_the_plain_file(tmp_path, reviews_csv, kind, fmt):
    df = pd.read_csv(reviews_csv)
    plain = tmp_path / f"data.{fmt}"
    {
        "csv": lambda: df.to_csv(plain, index=False),
        "tsv": lambda: df.to_csv(plain, sep="\t", index=False),
        "jsonl": lambda: df.to_json(plain, orient="records", lines=True, force_ascii=False),
        "parquet": lambda: df.to_parquet(plain),
    }[fmt]()
    packed = _compress(plain, kind, tmp_path)
    expected = read_table(plain, "review", "label")
    pd.testing.assert_frame_equal(read_table(packed, "review", "label"), expected)
    # the content, not the suffix, says it is compressed: an explicit format works too
    pd.testing.assert_frame_equal(read_table(packed, "review", "label", fmt), expected)


def test_compressed_input_errors_are_one_line(tmp_path, reviews_csv):
    two = _compress(reviews_csv, "zip", tmp_path, {"more.csv": b"label,review\n"})
    with pytest.raises(EmbedforgeError, match=r"two\.zip|must hold exactly one table file; it holds 2"):
        read_table(two, "review", "label")
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"\x1f\x8b" + b"not gzip at all")
    with pytest.raises(EmbedforgeError, match=r"bad.csv.gz: cannot read the gzip file"):
        read_table(bad, "review", "label")
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("label,review\n1,很好吃\n".encode("gbk"))
    with pytest.raises(EmbedforgeError, match=r"gbk.zip \(inner/gbk.csv\) line 2: not valid UTF-8"):
        read_table(_compress(gbk, "zip", tmp_path), "review", "label")


def test_sample_rows_is_seeded_taken_before_splitting_and_recorded(tmp_path, reviews_csv, tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)

    def run(out: str, **kw) -> dict:
        return prepare(_params(reviews_csv, **kw), tok, tmp_path / out, cache_dir=tmp_path / "jieba")

    full = run("full")
    assert full["sample"] == {"sample_rows": 0, "rows_cleaned": 80, "rows_used": 80}
    first = run("a", sample_rows=40)
    assert first["sample"] == {"sample_rows": 40, "rows_cleaned": 80, "rows_used": 40}
    assert sum(first["rows"].values()) == 40 and first["rows"]["train"] == 32  # split after sampling
    run("b", sample_rows=40)
    assert read_parquet(tmp_path / "a/train.parquet").equals(read_parquet(tmp_path / "b/train.parquet"))
    run("c", sample_rows=40, seed=7)
    assert not read_parquet(tmp_path / "a/train.parquet").equals(read_parquet(tmp_path / "c/train.parquet"))
    assert run("d", sample_rows=1000)["sample"]["rows_used"] == 80  # more than there is: all rows


def test_sample_rows_applies_to_a_fixed_split_as_a_whole(tmp_path, reviews_csv, tiny_model_dir):
    df = pd.read_csv(reviews_csv)
    files = {}
    for name, part in (("train", df[:50]), ("validation", df[50:65]), ("test", df[65:])):
        files[f"{name}_file"] = str(tmp_path / f"{name}.csv")
        part.to_csv(files[f"{name}_file"], index=False)
    p = PrepareParams(input=None, sample_rows=40, **files)
    metrics = prepare(p, load_tokenizer(tiny_model_dir), tmp_path / "out", cache_dir=tmp_path / "j")
    assert sum(metrics["rows"].values()) == 40 and all(n > 0 for n in metrics["rows"].values())


def test_a_million_column_header_fails_in_seconds(tmp_path):
    import time

    wide = tmp_path / "wide.csv"
    wide.write_text("label,review" + ",x" * 500_000 + "\n", encoding="utf-8")
    start = time.monotonic()
    with pytest.raises(EmbedforgeError) as err:
        read_table(wide, "review", "label")
    assert time.monotonic() - start < 5
    assert str(err.value) == (
        f"{wide} line 1: the header has 500,002 columns; expected at most 16,384 (is the format right?)"
    )


def test_a_wide_row_and_a_wide_json_object_are_one_line(tmp_path):
    from embedforge.prepare.clean import MAX_COLUMNS

    row = tmp_path / "row.csv"
    row.write_text("label,review\n1,好\n0" + ",x" * (MAX_COLUMNS + 1) + "\n", encoding="utf-8")
    with pytest.raises(EmbedforgeError, match=r"row.csv: cannot parse as csv: .*Expected 2 fields in line 3"):
        read_table(row, "review", "label")
    obj = tmp_path / "wide.jsonl"
    keys = {f"k{i}": 1 for i in range(MAX_COLUMNS + 1)}
    obj.write_text('{"label": 1, "review": "好"}\n' + json.dumps(keys) + "\n", encoding="utf-8")
    with pytest.raises(
        EmbedforgeError, match=r"wide.jsonl line 2: the object has 16,385 keys; expected at most"
    ):
        read_table(obj, "review", "label")


def test_a_quoted_header_is_counted_by_its_fields(tmp_path, monkeypatch):
    from embedforge.prepare import clean as clean_module

    monkeypatch.setattr(clean_module, "MAX_COLUMNS", 3)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('label,review,"a,b,c,d"\n1,好,x\n0,差,y\n', encoding="utf-8")
    assert len(read_table(quoted, "review", "label")) == 2  # 3 columns, 5 commas


@pytest.mark.parametrize("kind", ["plain", "gz", "zip"])
def test_a_line_longer_than_the_bound_is_one_line(tmp_path, monkeypatch, kind):
    from embedforge.prepare import clean as clean_module

    monkeypatch.setattr(clean_module, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(clean_module, "_READ_CHUNK", 256)  # the long line spans several chunks
    long = tmp_path / "long.csv"
    long.write_text("label,review\n1,好\n0," + "x" * 999 + "\n1,差\n", encoding="utf-8")
    path = long if kind == "plain" else _compress(long, kind, tmp_path)
    with pytest.raises(EmbedforgeError) as err:
        read_table(path, "review", "label")
    assert str(err.value).endswith(
        " line 3: longer than 1,000 bytes; expected one row per line (is this a table, and is the format "
        "right?)"
    )
    monkeypatch.setattr(clean_module, "MAX_LINE_BYTES", 1002)  # the longest line is 1001 bytes
    assert len(read_table(path, "review", "label")) == 3


@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_a_compression_bomb_stops_while_inflating(tmp_path, monkeypatch, kind):
    from embedforge.prepare import clean as clean_module

    monkeypatch.setattr(clean_module, "INFLATION_FLOOR", 1 << 20)  # 64 MiB in real runs
    bomb = tmp_path / "bomb.csv"
    bomb.write_text("label,review\n" + "1,好吃\n" * 1_000_000, encoding="utf-8")  # 9 MB, ~1000:1
    packed = _compress(bomb, kind, tmp_path)
    with pytest.raises(EmbedforgeError) as err:
        read_table(packed, "review", "label")
    assert re.fullmatch(
        rf"{re.escape(str(packed))}( \(inner/bomb.csv\))?: inflates to over 100 times its compressed size "
        r"\(2 MiB read from [\d,]+ bytes\); expected a compressed table, not a compression bomb",
        str(err.value),
    )
    monkeypatch.setattr(clean_module, "INFLATION_FLOOR", 64 << 20)
    assert len(read_table(packed, "review", "label")) == 1_000_000  # under the floor: read


def test_an_input_larger_than_the_bound_is_one_line(tmp_path, monkeypatch, reviews_csv):
    from embedforge.prepare import clean as clean_module

    monkeypatch.setattr(clean_module, "MAX_INPUT_BYTES", 1000)
    with pytest.raises(
        EmbedforgeError, match=r"reviews.csv: larger than 1,000 bytes uncompressed; expected at most"
    ):
        read_table(reviews_csv, "review", "label")


def test_a_file_that_is_not_a_table_is_never_echoed(tmp_path):
    passwd = tmp_path / "passwd.csv"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    with pytest.raises(EmbedforgeError) as err:
        read_table(passwd, "review", "label")
    assert str(err.value) == (
        f"{passwd}: no column 'review' (prepare.text_column); its first row, read as a header of 1 "
        "column, does not look like column names; expected a header row naming the columns"
    )
    named = tmp_path / "named.csv"
    named.write_text("标签,评论 text,id_2\n1,好,3\n", encoding="utf-8")
    with pytest.raises(
        EmbedforgeError,
        match=r"no column 'review' \(prepare.text_column\); columns are 标签, 评论 text, id_2$",
    ):
        read_table(named, "review", "label")


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_class_absent_from_a_split_is_warned(tmp_path, reviews_csv, tiny_model_dir, caplog):
    tok = load_tokenizer(tiny_model_dir)
    with caplog.at_level(logging.WARNING, logger="embedforge"):
        prepare(_params(reviews_csv), tok, tmp_path / "ok", cache_dir=tmp_path / "j")
    assert _warnings(caplog) == []
    df = pd.read_csv(reviews_csv)
    rare = pd.DataFrame({"label": [2, 2], "review": ["第三类甲", "第三类乙"]})  # 2 rows: both go to train
    pd.concat([df, rare]).to_csv(tmp_path / "rare.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="embedforge"):
        prepare(_params(tmp_path / "rare.csv"), tok, tmp_path / "p", cache_dir=tmp_path / "j")
    assert _warnings(caplog) == [
        "prepare: class '2' has no row in the validation split (train: 2, test: 0); its scores there are 0 "
        "or undefined",
        "prepare: class '2' has no row in the test split (train: 2, validation: 0); its scores there are 0 "
        "or undefined",
    ]


def test_a_tokenization_that_is_mostly_unknown_is_warned(tmp_path, tiny_model_dir, caplog):
    english = tmp_path / "english.csv"
    pd.DataFrame(
        {
            "label": [0, 1] * 20,
            "review": [f"quite {w} words here {i}" for i, w in enumerate(["bad", "good"] * 20)],
        }
    ).to_csv(english, index=False)
    tok = load_tokenizer(tiny_model_dir)  # a character vocabulary of Chinese reviews: English is [UNK]
    with caplog.at_level(logging.WARNING, logger="embedforge"):
        prepare(_params(english, language="en"), tok, tmp_path / "p", cache_dir=tmp_path / "j")
    messages = _warnings(caplog)
    assert len(messages) == 3
    assert all(
        re.fullmatch(
            r"prepare: \d+% of the (train|validation|test) split's tokens are the unknown token \[UNK\]; "
            r"expected a tokenizer that fits the data \(check model.source and prepare.language\)",
            m,
        )
        for m in messages
    )


def test_unknown_share_counts_text_tokens_only(tiny_model_dir):
    from embedforge.prepare.run import unknown_share

    tok = load_tokenizer(tiny_model_dir)
    cls, sep, unk = tok.cls_token_id, tok.sep_token_id, tok.unk_token_id
    assert unknown_share([[cls, unk, 7, sep], [cls, unk, sep]], tok) == pytest.approx(2 / 3)
    assert unknown_share([[cls, sep]], tok) == 0.0
