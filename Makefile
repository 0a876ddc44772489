# introspect-lab: the two commands that matter are `make lab` and `make test`.
# Both create .venv if it is missing and install the package with its dev extra.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.introspect-lab-installed
PYTEST_WORKERS ?= 2
# PyTorch build for a new venv: auto (CPU-only on Linux without an NVIDIA GPU), cpu or cuda (.ci/install_torch.py)
TORCH ?= auto
# a notebook cell that runs longer than this under `make test` (fast mode) is a hang: fail it
CELL_TIMEOUT ?= 120

export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install lab test lint format fetch bench exercises clean test-browser

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python .ci/install_torch.py --python $(BIN)/python --torch $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Set everything up and open JupyterLab on the welcome notebook.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	cd notebooks && ../$(BIN)/jupyter lab $(ROOT_FLAG) $(LAB_ARGS) 00_welcome.ipynb

## Set everything up and run the whole suite offline: lint, unit tests, every notebook (fast mode).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	INTROSPECT_LAB_FAST=1 INTROSPECT_LAB_OFFLINE=1 INTROSPECT_LAB_PROGRESS=0 MPLBACKEND=Agg OMP_NUM_THREADS=1 \
	  $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) -p no:cacheprovider --durations=20 \
	  --ignore=notebooks/exercises tests notebooks

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Download the classic model weights and the datasets (needs a network once).
fetch: install
	$(BIN)/introspect-lab fetch --all

## Speed and memory benchmarks (not part of `make test`).
bench: install
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f; done
	$(BIN)/python bench/notebooks.py

## Regenerate the student notebooks (notebooks/exercises) from the nbgrader sources (docs/course/source).
exercises: install
	$(BIN)/introspect-lab exercises

## A real browser (not part of `make test`): JupyterLab in headless Chromium runs a widget notebook
## and moves a slider. Needs Debian's chromium (`apt-get install -y chromium`; .ci/run installs it).
test-browser: install
	INTROSPECT_LAB_BROWSER=1 INTROSPECT_LAB_OFFLINE=1 INTROSPECT_LAB_PROGRESS=0 OMP_NUM_THREADS=1 \
	  $(BIN)/python -m pytest -p no:cacheprovider -v tests/browser

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/results
