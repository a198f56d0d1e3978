#!/bin/sh
# Run stage script stages/$1.py the same way however DVC was started (dvc.yaml: `sh stages/run.sh <stage>`).
#  - Interpreter: the project's .venv when there is one, else `python` from PATH. `dvc exp run --queue/--temp`
#    runs in a copy under <repo>/.dvc/tmp/exps/, which has no .venv of its own: use the repository's.
#  - Code: src/ of the checkout being reproduced comes first on sys.path, ahead of any installed embedforge
#    (the editable install points at the main checkout, not at an experiment's copy).
set -e
stage=${1:?usage: sh stages/run.sh <stage>}
root=$PWD
case $root in */.dvc/tmp/exps/*) root=${root%%/.dvc/tmp/exps/*} ;; esac
if [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python; else python=python; fi
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" exec "$python" "stages/$stage.py"
