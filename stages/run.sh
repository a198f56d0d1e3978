#!/bin/sh
# Run stage script stages/$1.py the same way however DVC was started (dvc.yaml: `sh stages/run.sh <stage>`).
#  - Interpreter: the project's .venv when there is one, else `python` from PATH. `dvc exp run --queue/--temp`
#    runs in a copy under <repo>/.dvc/tmp/exps/, which has no .venv of its own: use the repository's.
#  - Fingerprint: a stage whose fingerprints/<stage>.json is out of date refuses to run (one line).
#  - Code: src/ of the checkout being reproduced comes first on sys.path, ahead of any installed embedforge
#    (the editable install points at the main checkout, not at an experiment's copy).
set -e
stage=${1:?usage: sh stages/run.sh <stage>}
root=$PWD
case $root in */.dvc/tmp/exps/*) root=${root%%/.dvc/tmp/exps/*} ;; esac
if [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python; else python=python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# A stage whose fingerprint is stale (an input edited, then `dvc repro -s <stage>`) stops with one line.
if [ "$stage" != fingerprint ] && [ -f "fingerprints/$stage.json" ]; then "$python" stages/fingerprint.py --check "$stage"; fi
exec "$python" "stages/$stage.py"
