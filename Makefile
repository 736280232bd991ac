# Every recipe calls the project's virtualenv by path (.venv/bin/...): no activation needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
DAGSTER_PORT ?= 3000
SIM_PORT ?= 8765
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DAGSTER_HOME_ABS := $(abspath $(DAGSTER_HOME))

.PHONY: .venv dev demo test bench postgres

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
test: $(VENV_STAMP) postgres
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -n 4 --dist loadfile --durations=30

# PostgreSQL's programs (initdb, pg_ctl, psql) for the production end-to-end test, which starts its own throw-away
# server: installed from Debian's packages when missing (as root, or through sudo).
postgres:
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "make test: installing PostgreSQL (Debian packages postgresql, postgresql-client)"; \
		if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
		$$sudo apt-get install -y --no-install-recommends postgresql postgresql-client \
			|| { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends postgresql postgresql-client; }; \
	fi

# Every bench/*.py in turn; each prints its own figures.
bench: $(VENV_STAMP)
	@shopt -s nullglob; files=(bench/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "make bench: no bench/*.py yet"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; $(VENV)/bin/python "$$f" || exit $$?; done
