# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
# PYTHONDONTWRITEBYTECODE=1 on these machines: precompiled bytecode halves Airflow's import time.
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy

.PHONY: help setup demo test test-fast lint bench airflow cluster lock clean

help:
	@echo "make demo      build .venv, load the bundled 2016 case study, print the 7 Oct 2016 verdict"
	@echo "make test      build .venv, ruff, mypy (strict on pipeline/timing), then the whole test suite (includes the Airflow end-to-end test)"
	@echo "make test-fast the suite without tests marked slow"
	@echo "make airflow   start Airflow with this repository's airflow.cfg (one Ctrl-C stops it)"
	@echo "make cluster   the Celery cluster on loopback (PostgreSQL, Redis, two workers): scripts/cluster.sh up [--machines]|check|down"
	@echo "make bench     run the benchmarks in bench/"
	@echo "make lint      ruff"
	@echo "make lock      re-resolve requirements*.lock after editing pyproject.toml (keeps other pins)"

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"

# The stamp depends on the lock: a changed lock re-syncs, an unchanged one reuses the venv.
$(VENV)/.synced: requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(BIN)/media-timing demo

test: setup
	./scripts/ensure-browser.sh
	$(BIN)/ruff check --quiet .
	$(BIN)/mypy pipeline/timing
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .

$(VENV)/.bench-synced: requirements-bench.lock | $(VENV)/.synced
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements-bench.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@ $(VENV)/.synced

bench: $(VENV)/.bench-synced
	$(BIN)/python bench/timing.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/stories.py

airflow: setup
	./scripts/airflow.sh up

cluster: setup
	./scripts/cluster.sh up

lock: | $(BIN)/uv
	$(BIN)/uv pip compile --quiet --no-header pyproject.toml --extra dev --extra cluster -o requirements.lock --python-version 3.11
	$(BIN)/uv pip compile --quiet --no-header pyproject.toml --extra dev --extra cluster --extra bench -o requirements-bench.lock --python-version 3.11

clean:
	rm -rf $(VENV) .airflow .pytest-airflow-home data/reports data/staging data/*.duckdb*
