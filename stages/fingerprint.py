"""DVC stage `fingerprint` (always runs): what params.yaml names -> fingerprints/<stage>.json.

Each stage depends on its own fingerprint file, so editing any file it reads (wherever it lives), or
installing another version of a `pkg:` model, reruns that stage and only that stage.
`--check <stage>` (run by stages/run.sh before each stage) writes nothing and fails with one line when
that stage's file is out of date, as after an input edit followed by `dvc repro -s <stage>`.
"""

import sys
from pathlib import Path

from embedforge.core.files import write_json
from embedforge.core.params import load_params
from embedforge.core.stage import run_stage
from embedforge.fingerprint import check_current, load_cache, prune_cache, stage_fingerprints

OUT = Path("fingerprints")
# file hashes keyed by (size, mtime, inode), so an unchanged multi-GB vector file is not read again
CACHE = Path(".cache/embedforge/fingerprint-md5.json")


def main() -> None:
    cache = load_cache(CACHE)
    if sys.argv[1:2] == ["--check"]:
        check_current(sys.argv[2], load_params(), OUT, cache)  # the cache is only read
        return
    for stage, fingerprint in stage_fingerprints(load_params(), cache).items():
        write_json(OUT / f"{stage}.json", fingerprint)
    write_json(CACHE, prune_cache(cache))


if __name__ == "__main__":
    run_stage(main)
