import os

import pytest

from embedforge.core import files as io
from embedforge.core.files import atomic_path


def test_replacing_a_folder_swaps_whole_folders_and_deletes_nothing_first(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    seen = []
    real_replace = os.replace

    def watching_replace(src, dst):
        seen.append(sorted(p.name for p in out.iterdir()) if out.exists() else None)
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", watching_replace)
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
    # old folder moved aside whole (not deleted file by file), then the new one renamed into place
    assert seen == [["old.txt"], None]
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left behind


def test_an_error_keeps_the_old_output(tmp_path):
    out = tmp_path / "metrics.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_parquet_rows_reads_the_footer_and_names_a_missing_file(tmp_path):
    import pandas as pd

    from embedforge.core.errors import EmbedforgeError
    from embedforge.core.files import parquet_rows, write_parquet

    write_parquet(tmp_path / "t.parquet", pd.DataFrame({"a": range(7)}))
    assert parquet_rows(tmp_path / "t.parquet") == 7
    with pytest.raises(EmbedforgeError, match="nope.parquet: file not found"):
        parquet_rows(tmp_path / "nope.parquet")
