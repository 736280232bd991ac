# Every recipe calls the project's virtualenv by path (.venv/bin/...): no activation needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
DAGSTER_PORT ?= 3000
SIM_PORT ?= 8765
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DAGSTER_HOME_ABS := $(abspath $(DAGSTER_HOME))

.PHONY: .venv dev demo check test bench lint test-tools

# Create the virtualenv and install the project (editable, with dev extras); redone only when setup.py or
# pyproject.toml change.
.venv: $(VENV_STAMP)

$(VENV_STAMP): setup.py pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

# Dagster UI against the exchange configured in the environment / .env (real Binance by default). The instance's
# settings (the duckdb pool's limit) come from dagster.dev.yaml, copied to $(DAGSTER_HOME)/dagster.yaml unless a
# dagster.yaml of your own is there (one whose first line is not dagster.dev.yaml's): that one is kept, with a note.
dev: $(VENV_STAMP)
	mkdir -p "$(DAGSTER_HOME_ABS)"
	@DAGSTER_HOME="$(DAGSTER_HOME_ABS)" scripts/demo.sh --instance-config-only
	@$(VENV)/bin/python -m crypto_assets.preflight || { echo "make dev: dagster not started (preflight failed)." >&2; exit 1; }
	DAGSTER_HOME="$(DAGSTER_HOME_ABS)" $(VENV)/bin/dagster dev -h 127.0.0.1 -p $(DAGSTER_PORT) -w workspace.yaml

# The same, offline: against the bundled exchange simulator on 127.0.0.1:$(SIM_PORT), stopped when dagster dev exits.
demo: $(VENV_STAMP)
	SIM_PORT="$(SIM_PORT)" DAGSTER_PORT="$(DAGSTER_PORT)" DAGSTER_HOME="$(DAGSTER_HOME_ABS)" scripts/demo.sh

# Lint and format check (ruff, configured in pyproject.toml): a lint or format error fails check and test.
lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The inner loop (goal: under 3 minutes on 2 cores): lint, then every test but the end-to-end ones (marked e2e: a
# whole `dagster dev` or production deployment), on four workers, one test file per worker at a time.
check: lint test-tools
	$(VENV)/bin/pytest -n 4 --dist loadfile -m "not e2e" --durations=15

# Everything, what .ci/run calls: lint, then the whole suite on four workers, the end-to-end files first
# (conftest.py): most integration tests wait on real-time exchange minutes, so they overlap well on two cores.
test: lint test-tools
	$(VENV)/bin/pytest -n 4 --dist loadfile --durations=30

# The programs the tests start or call, from Debian's packages when missing (as root, or through sudo): PostgreSQL
# (initdb, pg_ctl, psql) for the throw-away servers of the instance and production tests, docker-compose, which
# validates deploy/docker-compose.yml (no Docker engine needed), and Prometheus (prometheus, promtool), which checks
# deploy/prometheus and runs in the monitoring tests (on a port of their own; where systemd runs, Debian's package
# also starts its own service on 9090). A test whose program is missing fails naming it.
test-tools:
	@missing=; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="postgresql"; \
	command -v psql >/dev/null || missing="$$missing postgresql-client"; \
	command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
		echo "make: installing Debian packages for the tests:$$missing"; \
		if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
		$$sudo apt-get install -y --no-install-recommends $$missing \
			|| { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends $$missing; }; \
	fi

# Every bench/*.py in turn, then breadth.py again on PostgreSQL (--postgres); each prints its own figures.
bench: $(VENV_STAMP)
	@shopt -s nullglob; files=(bench/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "make bench: no bench/*.py yet"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; $(VENV)/bin/python "$$f" || exit $$?; done; \
	if [ -e bench/breadth.py ]; then echo "== bench/breadth.py --postgres"; $(VENV)/bin/python bench/breadth.py --postgres; fi
