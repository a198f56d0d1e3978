"""Atomic writes and the small file formats shared by every stage.

Every output is written to a temporary sibling and renamed into place, so a crash or a bad input
never leaves a half-written file or folder behind.
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


@contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success replace `path` with it, on error delete it.

    Temporaries that a killed run left next to `path` are removed first. What is published gets the
    permissions a plain open() or mkdir() would give under the process umask. When `path` is a symlink,
    its target is replaced (the temporary is made next to the target, on the target's disk) and the
    link is kept. A folder that cannot take the output (no permission, read-only, full) is one line.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        prefix = f"{_tmp_prefix(path)}{os.getpid()}."
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=TMP_SUFFIX, dir=path.parent))
    except OSError as err:
        raise _write_error(path, err) from None
    target = tmp / path.name
    try:
        if is_dir:
            target.mkdir()
        yield target
        _open_modes(target)
        if path.is_dir() and not path.is_symlink():
            # A folder cannot be replaced in one rename: move the old one aside first (two renames, no
            # deletion in between), so the path never holds a partly deleted or partly written output.
            # A kill between the two leaves the old folder in the temporary; the next write restores it.
            os.replace(path, tmp / OLD_NAME)
        os.replace(target, path)  # for a file this overwrites atomically
    except OSError as err:
        if err.errno in _WRITE_ERRORS:
            raise _write_error(path, err) from None
        raise
    finally:
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
    if not path.is_file():
        raise EmbedforgeError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
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
    if not path.is_file():
        raise EmbedforgeError(f"{path}: file not found (run the stage that produces it first)")
    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (pa.ArrowInvalid, KeyError) as err:
        raise EmbedforgeError(f"{path}: cannot read as Parquet with columns {columns}: {err}") from None


def parquet_rows(path: str | Path) -> int:
    """Number of rows of a Parquet file, read from its footer only."""
    path = Path(path)
    if not path.is_file():
        raise EmbedforgeError(f"{path}: file not found (run the stage that produces it first)")
    return pq.ParquetFile(path).metadata.num_rows


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
