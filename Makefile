# Every recipe calls the project's virtualenv by path (.venv/bin/...): no activation needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
DAGSTER_PORT ?= 3000
SIM_PORT ?= 8765
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DAGSTER_HOME_ABS := $(abspath $(DAGSTER_HOME))

.PHONY: .venv dev demo test bench

# Create the virtualenv and install the project (editable, with dev extras); redone only when setup.py or
# pyproject.toml change.
.venv: $(VENV_STAMP)

$(VENV_STAMP): setup.py pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

# Dagster UI against the exchange configured in the environment / .env (real Binance by default).
dev: $(VENV_STAMP)
	mkdir -p "$(DAGSTER_HOME_ABS)"
	@$(VENV)/bin/python -m crypto_assets.preflight || { echo "make dev: dagster not started (preflight failed)." >&2; exit 1; }
	DAGSTER_HOME="$(DAGSTER_HOME_ABS)" $(VENV)/bin/dagster dev -h 127.0.0.1 -p $(DAGSTER_PORT) -w workspace.yaml

# The same, offline: against the bundled exchange simulator on 127.0.0.1:$(SIM_PORT), stopped when dagster dev exits.
demo: $(VENV_STAMP)
	SIM_PORT="$(SIM_PORT)" DAGSTER_PORT="$(DAGSTER_PORT)" DAGSTER_HOME="$(DAGSTER_HOME_ABS)" scripts/demo.sh

# Lint and format check first (ruff, configured in pyproject.toml: a lint error fails the run), then the tests on four
# workers, one test file per worker at a time, the long end-to-end files first (conftest.py): most integration tests
# wait on real-time exchange minutes, so they overlap well on two cores.
test: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -n 4 --dist loadfile

# Every bench/*.py in turn; each prints its own figures.
bench: $(VENV_STAMP)
	@shopt -s nullglob; files=(bench/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "make bench: no bench/*.py yet"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; $(VENV)/bin/python "$$f" || exit $$?; done
