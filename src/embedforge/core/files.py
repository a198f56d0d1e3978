"""Atomic writes and the small file formats shared by every stage.

Every output is written to a temporary sibling and renamed into place, so a crash or a bad input
never leaves a half-written file or folder behind. Inside `output_set` (every stage runs in one) the
renames wait until the stage has written everything, so a stage's outputs are replaced together.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from embedforge.core.errors import EmbedforgeError

log = logging.getLogger(__name__)


TMP_SUFFIX = ".tmp"
OLD_NAME = ".old"  # inside a temporary: the output being replaced, between atomic_path's two renames
# errno values that mean "this folder cannot take the output" (permissions, read-only or full disk)
_WRITE_ERRORS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})
_TMP_TAIL = re.compile(r"(\d+)\.[^.]+\.tmp")
# where a set of outputs records, before its first rename, the renames it is about to make
JOURNAL_DIR = Path(".cache/embedforge/publishing")


def _tmp_prefix(path: Path) -> str:
    """Temporaries of `path` are `.<name>.<pid>.<random>.tmp`: the pid tells a killed run from a live one."""
    return f".{path.name}."


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete temporaries of `path` left by runs that were killed (their pid is gone); return them.

    A run killed between `atomic_path`'s two renames of a folder leaves `path` absent and the old
    output inside its temporary: that old output is first moved back to `path`.
    """
    finish_interrupted_publishes()  # first: a journal may name one of these temporaries as published
    removed = []
    prefix = _tmp_prefix(path)
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*{TMP_SUFFIX}"):
        # mkdtemp's random part has no dot, so a sibling named `<name>.<digits>` is never mistaken for a pid
        match = _TMP_TAIL.fullmatch(tmp.name[len(prefix) :])
        pid = match.group(1) if match else None
        if pid and int(pid) != os.getpid() and not _alive(int(pid)):
            old = tmp / OLD_NAME
            if (old.is_dir() or old.is_symlink()) and not (path.exists() or path.is_symlink()):
                os.replace(old, path)
                log.warning("restored %s, which a killed run (pid %s) had moved aside", path, pid)
            shutil.rmtree(tmp, ignore_errors=True)
            log.info("removed %s, left by a killed run (pid %s)", tmp, pid)
            removed.append(tmp)
    return removed


def _current_umask() -> int:
    """The process umask (read by setting it and setting it back: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_modes(target: Path) -> None:
    """Give `target` (and, for a folder, everything in it) the modes open()/mkdir() give under the umask.

    Some writers (safetensors' `save_file`, anything built on `mkstemp`) create files 0600 whatever the
    umask, and the temporary folder is 0700: without this, a published output would be private.
    """
    mask = _current_umask()
    paths = [target, *target.rglob("*")] if target.is_dir() else [target]
    for p in paths:
        if p.is_symlink():
            continue
        executable = p.is_dir() or p.stat().st_mode & 0o100
        p.chmod((0o777 if executable else 0o666) & ~mask)


@dataclass
class _Pending:
    """One output of a set, written and waiting for its rename: `target` (inside `tmp`) becomes `path`."""

    path: Path
    tmp: Path
    target: Path


@dataclass
class _OutputSet:
    """The outputs a stage has written so far, and the temporaries still being written into."""

    name: str
    pending: list[_Pending] = field(default_factory=list)
    open_temporaries: list[Path] = field(default_factory=list)


_ACTIVE: ContextVar[_OutputSet | None] = ContextVar("embedforge_output_set", default=None)


def _publish(item: _Pending) -> None:
    """Replace `item.path` with its written temporary; repeatable after a kill at any point."""
    if item.target.exists() or item.target.is_symlink():
        old = item.tmp / OLD_NAME
        if item.path.is_dir() and not item.path.is_symlink() and not old.exists():
            # A folder cannot be replaced in one rename: move the old one aside first (two renames, no
            # deletion in between), so the path never holds a partly deleted or partly written output.
            # A kill between the two leaves the old folder in the temporary; the next write restores it.
            os.replace(item.path, old)
        os.replace(item.target, item.path)  # for a file this overwrites atomically
    shutil.rmtree(item.tmp, ignore_errors=True)


def _journal(items: list[_Pending]) -> str:
    """The renames a set is about to make, as JSON: what `finish_interrupted_publishes` replays."""
    return json.dumps([{"path": str(i.path), "tmp": str(i.tmp), "target": str(i.target)} for i in items])


def finish_interrupted_publishes(journal_dir: Path | None = None) -> list[Path]:
    """Complete the renames of output sets whose run was killed while publishing; return their journals.

    A journal is written only once every output of its set is complete, so rolling it forward gives
    the whole new set; a run killed before that leaves only temporaries, and the old outputs stand.
    """
    journal_dir = JOURNAL_DIR if journal_dir is None else journal_dir
    done = []
    for journal in sorted(journal_dir.glob("*.json")) if journal_dir.is_dir() else []:
        pid = journal.stem.rpartition(".")[2]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue  # still publishing
        try:
            entries = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # half-written: the run died before its commit point, so nothing was renamed
        for entry in entries:
            _publish(_Pending(Path(entry["path"]), Path(entry["tmp"]), Path(entry["target"])))
        journal.unlink()
        log.warning("finished publishing %s, which a killed run (pid %s) had begun", journal.stem, pid)
        done.append(journal)
    return done


@contextmanager
def output_set(name: str) -> Iterator[None]:
    """Replace every output written inside this block together, when the block ends without error.

    Until then, each `atomic_path` output waits, complete, in its temporary (reads through `staged`
    see it); an error deletes them all and the old outputs stand. On success the renames are first
    recorded in a journal under `JOURNAL_DIR` and then made (milliseconds): a kill during them is
    rolled forward by the next stage run, write or `finish_interrupted_publishes`.
    Writes nested in an open temporary, and `atomic_path(..., now=True)`, are made at once.
    """
    if _ACTIVE.get() is not None:
        yield  # already inside a set: its end publishes
        return
    finish_interrupted_publishes()
    current = _OutputSet(name)
    token = _ACTIVE.set(current)
    try:
        yield
    except BaseException:
        for item in current.pending:
            shutil.rmtree(item.tmp, ignore_errors=True)
        raise
    finally:
        _ACTIVE.reset(token)
    if not current.pending:
        return
    JOURNAL_DIR.mkdir(parents=True, exist_ok=True)
    journal = JOURNAL_DIR / f"{name}.{os.getpid()}.json"
    scratch = journal.with_suffix(TMP_SUFFIX)
    with scratch.open("w", encoding="utf-8") as fh:
        fh.write(_journal(current.pending))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(scratch, journal)  # the commit point: from here the new set is what the outputs are
    try:
        for item in current.pending:
            _publish(item)
    except OSError as err:
        if err.errno in _WRITE_ERRORS:
            raise _write_error(item.path, err) from None
        raise
    journal.unlink()


def staged(path: str | Path) -> Path:
    """Where `path` can be read now: inside an output set, its written but not yet published version."""
    current = _ACTIVE.get()
    path = Path(path)
    if current is None:
        return path
    wanted = Path(os.path.abspath(path))
    for item in reversed(current.pending):
        if wanted == item.path:
            return item.target
        if item.path in wanted.parents:
            return item.target / wanted.relative_to(item.path)
    return path


def _inside_open_temporary(path: Path, current: _OutputSet) -> bool:
    return any(tmp == path or tmp in path.parents for tmp in current.open_temporaries)


@contextmanager
def atomic_path(path: str | Path, is_dir: bool = False, now: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success replace `path` with it, on error delete it.

    Inside an `output_set` the replacement waits for the end of the set (`now=True`: a checkpoint that
    must survive a kill is published at once). Temporaries that a killed run left next to `path` are
    removed first. What is published gets the permissions a plain open() or mkdir() would give under
    the process umask. When `path` is a symlink, its target is replaced (the temporary is made next to
    the target, on the target's disk) and the link is kept. A folder that cannot take the output (no
    permission, read-only, full) is one line.
    """
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        prefix = f"{_tmp_prefix(path)}{os.getpid()}."
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=TMP_SUFFIX, dir=path.parent))
    except OSError as err:
        raise _write_error(path, err) from None
    current = _ACTIVE.get()
    deferred = current is not None and not now and not _inside_open_temporary(path, current)
    target = tmp / path.name
    published = False
    try:
        if is_dir:
            target.mkdir()
        if current is not None:
            current.open_temporaries.append(tmp)
        try:
            yield target
        finally:
            if current is not None:
                current.open_temporaries.remove(tmp)
        _open_modes(target)
        if deferred:
            assert current is not None
            current.pending.append(_Pending(path, tmp, target))
            published = True  # the set publishes it, or deletes it on error
        else:
            _publish(_Pending(path, tmp, target))
    except OSError as err:
        if err.errno in _WRITE_ERRORS:
            raise _write_error(path, err) from None
        raise
    finally:
        if not published:
            shutil.rmtree(tmp, ignore_errors=True)


def _write_error(path: Path, err: OSError) -> EmbedforgeError:
    """One line for an output that cannot be written: the path, the reason, what is expected."""
    reason = os.strerror(err.errno) if err.errno else str(err)
    return EmbedforgeError(
        f"{path}: cannot write the output ({reason}); expected a writable folder with free space "
        f"at {path.parent}"
    )


def _non_finite_key(obj: Any, where: str = "") -> str | None:
    """The key path (e.g. `a.b[2]`) of the first NaN or infinity in a JSON-like object, if any."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "(top level)"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        sub = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        found = _non_finite_key(value, sub)
        if found:
            return found
    return None


def write_json(path: str | Path, obj: Any) -> None:
    """Write strict JSON (UTF-8, sorted keys, indented) atomically; NaN and infinity are refused."""
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except ValueError:
        key = _non_finite_key(obj)
        raise EmbedforgeError(
            f"{path}: refusing to write a non-finite number (NaN or infinity) at {key}"
        ) from None
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: str | Path) -> Any:
    """Read a JSON file, with a one-line error naming it when it is missing or malformed."""
    path = Path(path)
    if not staged(path).is_file():
        raise EmbedforgeError(f"{path}: file not found")
    try:
        return json.loads(staged(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EmbedforgeError(f"{path}: not valid JSON ({err})") from None


def write_parquet(path: str | Path, df: pd.DataFrame | pa.Table) -> None:
    """Write a DataFrame or Arrow table to Parquet atomically."""
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file, with a one-line error naming it when missing or lacking columns."""
    path = Path(path)
    if not staged(path).is_file():
        raise EmbedforgeError(f"{path}: file not found (run the stage that produces it first)")
    try:
        return pq.read_table(staged(path), columns=columns).to_pandas()
    except (pa.ArrowInvalid, KeyError) as err:
        raise EmbedforgeError(f"{path}: cannot read as Parquet with columns {columns}: {err}") from None


def parquet_rows(path: str | Path) -> int:
    """Number of rows of a Parquet file, read from its footer only."""
    path = Path(path)
    if not staged(path).is_file():
        raise EmbedforgeError(f"{path}: file not found (run the stage that produces it first)")
    return pq.ParquetFile(staged(path)).metadata.num_rows


CHUNK = 1 << 20  # bytes hashed at a time


def file_md5(path: Path, cache: dict[str, Any]) -> str:
    """MD5 of a file, reused from `cache` while its size, mtime and inode are unchanged (as DVC does)."""
    st = path.stat()
    key = str(path.resolve())
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    hit = cache.get(key)
    if hit and hit["stamp"] == stamp:
        return str(hit["md5"])
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    cache[key] = {"stamp": stamp, "md5": digest.hexdigest()}
    return digest.hexdigest()


def path_fingerprint(path: str | Path | None, cache: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """{path, md5} of a file, or of a folder (its file names and contents); a missing path is noted."""
    if path is None:
        return None
    cache = {} if cache is None else cache
    p = Path(path).expanduser()
    if p.is_file():
        return {"path": str(path), "md5": file_md5(p, cache)}
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        listing = "".join(f"{f.relative_to(p).as_posix()}\0{file_md5(f, cache)}\n" for f in files)
        return {"path": str(path), "md5": hashlib.md5(listing.encode()).hexdigest(), "files": len(files)}
    return {"path": str(path), "missing": True}  # the stage that reads it reports the error
