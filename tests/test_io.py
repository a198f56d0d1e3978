import os
import re

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


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_runs_temporary_is_removed_and_a_live_ones_kept(tmp_path):
    dead = tmp_path / f".embeddings.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".embeddings.{os.getppid()}.def456.tmp"  # our parent: alive, not us
    other = tmp_path / ".embeddings.x.99999.ghi789.tmp"  # a temporary of `embeddings.x`, not ours
    for folder in (dead, live, other):
        (folder / "embeddings").mkdir(parents=True)
    with atomic_path(tmp_path / "embeddings", is_dir=True) as tmp:
        assert str(os.getpid()) in tmp.parent.name  # our own temporary names us
        (tmp / "m.safetensors").write_text("x")
    assert not dead.exists()
    assert live.is_dir() and other.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "embeddings"])


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"a": {"b": [1.0, float("nan")]}}, "a.b[1]"),
        ({"loss": float("inf")}, "loss"),
        (float("-inf"), "(top level)"),
    ],
)
def test_write_json_refuses_non_finite_numbers_naming_file_and_key(tmp_path, obj, where):
    from embedforge.core.errors import EmbedforgeError
    from embedforge.core.files import write_json

    out = tmp_path / "metrics.json"
    out.write_text("{}\n")
    with pytest.raises(EmbedforgeError, match=rf"metrics\.json: .*non-finite.* at {re.escape(where)}$"):
        write_json(out, obj)
    assert out.read_text() == "{}\n"  # the last good file is kept


def test_run_stage_logs_embedforge_info_to_stderr_and_errors_as_one_line(tmp_path):
    import subprocess
    import sys

    code = (
        "import logging\n"
        "from embedforge.core.errors import EmbedforgeError\n"
        "from embedforge.core.stage import run_stage\n"
        "def main():\n"
        "    logging.getLogger('embedforge.x').info('hello')\n"
        "    logging.getLogger('other').info('hidden')\n"
        "    raise EmbedforgeError('params.yaml: bad')\n"
        "run_stage(main)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["INFO embedforge.x: hello", "error: params.yaml: bad"]


def test_a_kill_between_the_two_renames_keeps_the_old_folder_and_the_next_run_restores_it(tmp_path, caplog):
    out = tmp_path / "embeddings"
    # what a run killed after moving the old folder aside, before renaming the new one in, leaves
    tmp = tmp_path / f".embeddings.{_dead_pid()}.abc123.tmp"
    (tmp / io.OLD_NAME).mkdir(parents=True)
    (tmp / io.OLD_NAME / "old.txt").write_text("old")
    (tmp / "embeddings").mkdir()
    (tmp / "embeddings" / "new.txt").write_text("new")
    assert not out.exists()
    assert io.remove_stale_temporaries(out) == [tmp]
    assert (out / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings"]
    assert "restored" in caplog.text and str(out) in caplog.text


def test_a_killed_write_then_a_new_write_replaces_the_restored_folder(tmp_path, monkeypatch):
    out = tmp_path / "embeddings"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real_replace = os.replace

    def killed_after_the_first_rename(src, dst):
        real_replace(src, dst)
        if str(dst).endswith(io.OLD_NAME):
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this line runs

    monkeypatch.setattr(io.os, "replace", killed_after_the_first_rename)
    monkeypatch.setattr(io.shutil, "rmtree", lambda *a, **k: None)  # a killed run cleans nothing up
    dead = _dead_pid()
    monkeypatch.setattr(io.os, "getpid", lambda: dead)  # the killed run is a process now gone
    with pytest.raises(KeyboardInterrupt), atomic_path(out, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert not out.exists()  # the window the restore closes
    monkeypatch.undo()
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "newer.txt").write_text("newer")
    assert sorted(p.name for p in out.iterdir()) == ["newer.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings"]


def test_a_killed_run_after_both_renames_keeps_the_new_folder(tmp_path):
    out = tmp_path / "embeddings"
    out.mkdir()
    (out / "new.txt").write_text("new")
    tmp = tmp_path / f".embeddings.{_dead_pid()}.abc123.tmp"
    (tmp / io.OLD_NAME).mkdir(parents=True)
    io.remove_stale_temporaries(out)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert not tmp.exists()


def test_a_read_only_output_folder_is_one_line(tmp_path):
    from embedforge.core.errors import EmbedforgeError

    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder; the ENOSPC case below covers the same path")
    folder = tmp_path / "metrics"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(EmbedforgeError) as err, atomic_path(folder / "headline.json") as tmp:
            tmp.write_text("{}")
    finally:
        folder.chmod(0o755)
    assert str(err.value) == (
        f"{folder / 'headline.json'}: cannot write the output (Permission denied); expected a writable "
        f"folder with free space at {folder}"
    )


@pytest.mark.parametrize("code", ["EACCES", "EROFS", "ENOSPC"])
def test_an_output_folder_that_refuses_writes_is_one_line(tmp_path, monkeypatch, code):
    import errno
    import tempfile

    from embedforge.core.errors import EmbedforgeError

    def refuse(*args, **kwargs):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    out = tmp_path / "metrics" / "headline.json"
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)  # the folder takes no temporary
    with pytest.raises(EmbedforgeError) as err, atomic_path(out):
        pass
    assert str(err.value) == (
        f"{out}: cannot write the output ({os.strerror(getattr(errno, code))}); expected a writable "
        f"folder with free space at {out.parent}"
    )
    monkeypatch.undo()
    with pytest.raises(EmbedforgeError, match=r"No space left on device"), atomic_path(out) as tmp:
        tmp.write_text("{}")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # the disk fills while writing
    assert [p.name for p in out.parent.iterdir()] == []


def test_a_symlinked_output_folder_is_replaced_behind_the_link(tmp_path):
    elsewhere = tmp_path / "other-disk" / "embeddings"
    elsewhere.mkdir(parents=True)
    (elsewhere / "old.txt").write_text("old")
    project = tmp_path / "project"
    project.mkdir()
    (project / "embeddings").symlink_to(elsewhere)
    with atomic_path(project / "embeddings", is_dir=True) as tmp:
        assert tmp.parent.parent == elsewhere.parent  # the temporary is on the target's disk
        (tmp / "new.txt").write_text("new")
    assert (project / "embeddings").is_symlink()
    assert sorted(p.name for p in (project / "embeddings").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in elsewhere.parent.iterdir()) == ["embeddings"]


# -- a stage's outputs are replaced as a set ---------------------------------------------------------


def _old_outputs(root):
    (root / "metrics").mkdir()
    (root / "metrics" / "headline.json").write_text('{"run": "old"}\n')
    (root / "plots").mkdir()
    (root / "plots" / "old.png").write_text("old")


def _write_new_outputs(root):
    io.write_json(root / "metrics" / "headline.json", {"run": "new"})
    with atomic_path(root / "plots", is_dir=True) as tmp:
        io.write_json(tmp / "inside.json", {"nested": True})  # nested in an open temporary: at once
        (tmp / "new.png").write_text("new")


def test_an_output_set_replaces_nothing_until_it_ends_then_everything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _old_outputs(tmp_path)
    with io.output_set("evaluate"):
        _write_new_outputs(tmp_path)
        # the paths still hold the last run's outputs; the stage itself reads what it has written
        assert (tmp_path / "metrics" / "headline.json").read_text() == '{"run": "old"}\n'
        assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["old.png"]
        assert io.read_json(tmp_path / "metrics" / "headline.json") == {"run": "new"}
        assert io.read_json(tmp_path / "plots" / "inside.json") == {"nested": True}
    assert io.read_json(tmp_path / "metrics" / "headline.json") == {"run": "new"}
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["inside.json", "new.png"]
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["headline.json"]  # no temporary
    assert not list((tmp_path / io.JOURNAL_DIR).glob("*"))


def test_an_error_in_an_output_set_keeps_every_old_output_and_no_temporary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _old_outputs(tmp_path)
    with pytest.raises(RuntimeError), io.output_set("evaluate"):
        _write_new_outputs(tmp_path)
        raise RuntimeError("the report failed to render")
    assert (tmp_path / "metrics" / "headline.json").read_text() == '{"run": "old"}\n'
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["old.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics", "plots"]
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["headline.json"]


def test_a_failing_stage_replaces_none_of_its_outputs(tmp_path):
    import subprocess
    import sys

    _old_outputs(tmp_path)
    script = tmp_path / "stage.py"
    script.write_text(
        "from pathlib import Path\n"
        "from embedforge.core.errors import EmbedforgeError\n"
        "from embedforge.core.files import write_json\n"
        "from embedforge.core.stage import run_stage\n"
        "def main():\n"
        "    write_json(Path('metrics/headline.json'), {'run': 'new'})\n"
        "    raise EmbedforgeError('plots: cannot draw')\n"
        "run_stage(main)\n"
    )
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == "error: plots: cannot draw"
    assert (tmp_path / "metrics" / "headline.json").read_text() == '{"run": "old"}\n'
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["headline.json"]


def test_a_kill_while_publishing_a_set_is_rolled_forward_by_the_next_run(tmp_path):
    import subprocess
    import sys

    _old_outputs(tmp_path)
    # os.replace calls while publishing: the journal, headline.json, then the plots folder's first
    # rename (old folder aside); the process dies there, as under SIGKILL (os._exit runs no cleanup)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from embedforge.core import files as io\n"
        "sys.path.insert(0, '.')\n"
        "from test_helper import write\n"
        "real, calls = os.replace, []\n"
        "def dying(src, dst):\n"
        "    calls.append(dst)\n"
        "    if len(calls) == 4:\n"
        "        os._exit(9)\n"
        "    real(src, dst)\n"
        "io.os.replace = dying\n"
        "with io.output_set('evaluate'):\n"
        "    write(Path('.').resolve())\n"
    )
    (tmp_path / "test_helper.py").write_text(
        "from embedforge.core import files as io\n"
        "from embedforge.core.files import atomic_path\n"
        "def write(root):\n"
        "    io.write_json(root / 'metrics' / 'headline.json', {'run': 'new'})\n"
        "    with atomic_path(root / 'plots', is_dir=True) as tmp:\n"
        "        (tmp / 'new.png').write_text('new')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert io.read_json(tmp_path / "metrics" / "headline.json") == {"run": "new"}
    assert not (tmp_path / "plots").exists()  # the mix a reader would see, and what the journal mends
    assert len(list((tmp_path / io.JOURNAL_DIR).glob("evaluate.*.json"))) == 1
    journals = io.finish_interrupted_publishes(tmp_path / io.JOURNAL_DIR)
    assert len(journals) == 1 and not journals[0].exists()
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["new.png"]
    assert io.read_json(tmp_path / "metrics" / "headline.json") == {"run": "new"}
    leftovers = [p.name for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []


def test_a_killed_set_before_its_journal_leaves_the_old_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _old_outputs(tmp_path)
    monkeypatch.setattr(io.shutil, "rmtree", lambda *a, **k: None)  # a killed run cleans nothing up
    with pytest.raises(KeyboardInterrupt), io.output_set("evaluate"):
        _write_new_outputs(tmp_path)
        raise KeyboardInterrupt  # stands in for SIGKILL before the end of the stage
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert (tmp_path / "metrics" / "headline.json").read_text() == '{"run": "old"}\n'
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["old.png"]
    assert io.finish_interrupted_publishes() == []  # no journal: nothing to roll forward


def test_now_publishes_a_checkpoint_inside_a_set_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with io.output_set("extract"):
        with atomic_path(tmp_path / "pass-10", is_dir=True, now=True) as tmp:
            (tmp / "state").write_text("10")
        assert (tmp_path / "pass-10" / "state").read_text() == "10"
