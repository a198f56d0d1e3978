"""Fingerprints of the inputs that params.yaml names, so DVC reruns a stage when any of them changes.

DVC 3 cannot put a list-valued or null param into a stage's `deps` (treeverse/dvc#8171; a null dep
crashes it), and a `pkg:` or hub-id model source is not a path at all. So the `fingerprint` stage
(always run, well under a second) writes one small JSON per stage here, and each stage depends on its
own file: a changed input changes that file, and DVC reruns exactly the stages that read it.
Deliberately free of torch/transformers imports: it runs on every `dvc repro`. It lives outside `core/`:
the `fingerprint` stage has no code deps (it always runs), so an edit here re-runs no other stage.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import json
import logging
import os
from pathlib import Path
from typing import Any

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import file_md5, path_fingerprint
from embedforge.core.lexicon import DIST_PREFIX, distribution_file
from embedforge.core.params import CEILING_READS, LEXICAL_READS, Params, lexical_exclude_files

log = logging.getLogger(__name__)


def corpus_fingerprint(spec: str | None, cache: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """extract.corpus: a file or folder as `path_fingerprint`, else a glob (the names and contents of its
    matches; `extract.corpus` reads them in this sorted order)."""
    if spec is None or Path(spec).expanduser().exists():
        return path_fingerprint(spec, cache)
    cache = {} if cache is None else cache
    files = sorted(
        Path(f) for f in glob.glob(str(Path(spec).expanduser()), recursive=True) if Path(f).is_file()
    )
    listing = "".join(f"{f.as_posix()}\0{file_md5(f, cache)}\n" for f in files)
    return {"path": spec, "md5": hashlib.md5(listing.encode()).hexdigest(), "files": len(files)}


def source_fingerprint(spec: str, cache: dict[str, Any] | None = None) -> dict[str, Any]:
    """What identifies model.source: its distribution and version, its folder's contents, or the hub id."""
    if spec.startswith("pkg:"):
        top = spec[len("pkg:") :].strip("/").partition("/")[0]
        dists = importlib.metadata.packages_distributions().get(top, [])
        versions = {name: importlib.metadata.version(name) for name in sorted(set(dists))}
        return {"source": spec, "distributions": versions}
    if Path(spec).expanduser().exists():
        return {"source": spec, "folder": path_fingerprint(spec, cache)}
    # A hub id: the id is all there is to know offline; downloads are cached by huggingface_hub.
    return {"source": spec}


def stage_fingerprints(params: Params, cache: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """One fingerprint per stage, of every file or folder that stage reads because params.yaml names it
    (and, for `ceiling` and a lexical `finetune`, of the other sections' params it reads)."""
    cache = {} if cache is None else cache
    p = params.prepare

    def each(paths: list[str]) -> list[dict[str, Any] | None]:
        return [path_fingerprint(x, cache) for x in paths]

    extract: dict[str, Any] = {
        "vector_files": each(params.extract.vector_files),
        "extra_words": each(params.extract.extra_words),
        "corpus": corpus_fingerprint(params.extract.corpus, cache),
        # resolved from prepare.language when params.yaml says `auto`; DVC sees only the word `auto`
        "template": params.extract.template,
        "extra_templates": params.extract.extra_templates,
    }
    if params.extract.lexicon is not None:  # absent while off: the default run's extract stays put
        extract["lexicon"] = lexicon_fingerprint(params, cache)
    return {
        "model": source_fingerprint(params.model.source, cache),
        "prepare": {
            key: path_fingerprint(getattr(p, key), cache)
            for key in ("input", "train_file", "validation_file", "test_file")
        },
        "extract": extract,
        "evaluate": {
            "similarity_files": each(params.evaluate.similarity_files),
            "analogy_files": each(params.evaluate.analogy_files),
            "targets": path_fingerprint(params.evaluate.targets, cache),
        },
        "finetune": {"lexical": lexical_fingerprint(params, cache)},
        # not files: the resolved values of the other sections' keys the ceiling reads (see CEILING_READS)
        "ceiling": {
            section: {key: getattr(getattr(params, section), key) for key in keys}
            for section, keys in CEILING_READS.items()
        },
    }


def lexicon_fingerprint(params: Params, cache: dict[str, Any]) -> dict[str, Any]:
    """extract.lexicon: its file (a `dist:` file with its distribution's version too), and the benchmark
    files whose pairs are removed from it (evaluate's among them, which `extract` then reads)."""
    spec = params.extract.lexicon
    assert spec is not None
    out: dict[str, Any] = {"source": spec}
    if spec.startswith(DIST_PREFIX):
        try:
            name, path = distribution_file(spec)
        except EmbedforgeError:
            out["missing"] = True  # the stage reports it
        else:
            out["distribution"] = {name: importlib.metadata.version(name)}
            out["file"] = {"md5": file_md5(path, cache)}
    else:
        out["file"] = path_fingerprint(spec, cache)
    out["exclude"] = [path_fingerprint(f, cache) for f in lexical_exclude_files(params)]
    return out


def lexical_fingerprint(params: Params, cache: dict[str, Any]) -> dict[str, Any] | None:
    """What `finetune` reads outside its section when finetune.lexical_weight > 0 (LEXICAL_READS, the
    benchmark files of LEXICAL_EXCLUDE, jieba's version: its dictionary is the word list); None when 0,
    so that the default run's `finetune` does not rerun for an `extract` or `evaluate` change."""
    if params.finetune.lexical_weight == 0:
        return None
    out: dict[str, Any] = {
        section: {key: getattr(getattr(params, section), key) for key in keys}
        for section, keys in LEXICAL_READS.items()
    }
    out["exclude"] = [path_fingerprint(f, cache) for f in lexical_exclude_files(params)]
    try:
        out["jieba"] = importlib.metadata.version("jieba")
    except importlib.metadata.PackageNotFoundError:
        out["jieba"] = None  # the stage reports it
    return out


def load_cache(path: Path) -> dict[str, Any]:
    """The hash cache of an earlier run, or an empty one when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def prune_cache(cache: dict[str, Any]) -> dict[str, Any]:
    """Drop entries of files that no longer exist, so the cache does not grow without bound."""
    return {k: v for k, v in cache.items() if os.path.exists(k)}


def _changed(recorded: Any, current: Any) -> list[str]:
    """The top-level keys whose fingerprint differs between the recorded and the current one."""
    if not (isinstance(recorded, dict) and isinstance(current, dict)):
        return [] if recorded == current else ["source"]
    return [k for k in sorted(set(recorded) | set(current)) if recorded.get(k) != current.get(k)]


def check_current(stage: str, params: Params, folder: Path, cache: dict[str, Any]) -> None:
    """Refuse to run `stage` when its fingerprint file no longer describes what it would read.

    `dvc repro -s <stage>` runs that stage alone, without the `fingerprint` stage: DVC then compares
    the stage against a fingerprint written before the user edited an input. Run from `stages/run.sh`,
    this makes a stage that does start with a stale fingerprint stop, so `dvc.lock` never records
    outputs of one input under the fingerprint of another.
    """
    recorded_path = folder / f"{stage}.json"
    try:
        recorded = json.loads(recorded_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return  # run by hand, outside DVC: there is nothing to disagree with
    except (OSError, ValueError):
        recorded = None
    # through JSON, as the file was written: tuples become lists
    current = json.loads(json.dumps(stage_fingerprints(params, cache).get(stage)))
    if changed := _changed(recorded, current):
        keys = ", ".join(f"{stage}.{k}" for k in changed)
        raise EmbedforgeError(
            f"{recorded_path} is out of date ({keys} changed since the `fingerprint` stage ran, which "
            f"`dvc repro -s {stage}` skips); run `dvc repro -s fingerprint {stage}` or `dvc repro {stage}`"
        )
