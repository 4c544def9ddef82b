# The two commands (README): `make repro` and `make test`. Both create/update .venv first and
# are idempotent: a second run reinstalls nothing and `dvc repro` has nothing to do.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.geolab-installed
export OMP_NUM_THREADS ?= 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv repro test test-all lint dag constraints clean-venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m geolab.compat.hook
	@$(BIN)/pip list 2>/dev/null | grep -iE '^nvidia-' | grep -v nvidia-ml-py \
	  && { echo "CUDA runtime packages were installed: see constraints.txt"; exit 1; } || true
	@touch $@

venv: $(STAMP)

## make repro: install, fetch the embedded sample from the in-repo DVC remote, run the graph.
repro: venv
	$(BIN)/dvc pull --quiet data.dvc
	$(BIN)/dvc repro

## make test: install, fetch the embedded sample (tests read it), then the fast test suite
## (slow tests: make test-all).
test: venv
	$(BIN)/dvc pull --quiet data.dvc
	$(BIN)/pytest -q -m "not slow"

test-all: venv
	$(BIN)/dvc pull --quiet data.dvc
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check src stages tests benchmarks
	$(BIN)/ruff format --check src stages tests benchmarks

## make dag: the rendered stage graph for the README.
dag: venv
	$(BIN)/dvc dag --md > docs/dag.md

## make constraints: re-pin every dependency from the current venv.
constraints: venv
	{ echo "# Exact versions of every dependency, tested together on Python 3.11 / CPU (see docs/architecture.md)."; \
	  echo "# Regenerate with: make constraints"; \
	  $(BIN)/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' | grep -v '^geolab'; } > constraints.txt

clean-venv:
	rm -rf $(VENV)
