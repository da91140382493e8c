# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# One venv; each target installs what it needs once (a stamp per extra), and again when
# pyproject.toml changes: `make run` the server alone, `make test` the test extra (PySpark,
# chdb, Playwright ...), `make bench` the bench extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install install-test install-bench run test test-fast lint bench bench-10m clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@

## What the server needs and nothing else (no test or benchmark tools).
install: $(RUN_STAMP)
install-test: $(TEST_STAMP)
install-bench: $(BENCH_STAMP)

## Create the venv, install the server, apply migrations, serve on 127.0.0.1:8080 with data/flowhistory.duckdb.
run: install
	$(BIN)/flowhistory db upgrade
	$(BIN)/flowhistory serve

## Install what tests need and run the whole suite (lint and types first: they are part of the contract).
test: install-test system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

## The quick check while working (under a minute): lint, then every test not marked `slow` (browser,
## engines, subprocess servers, durability, big oracles, matrix cases after the first: see
## tests/conftest.py), on two worker processes, stopping at the first failure. `make test` still
## runs everything, in one process (its live-server and timeout tests want the cores to themselves).
test-fast: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -x -p no:cacheprovider -n 2

## What the tests drive besides Python: Debian's Chromium (the dashboard's browser tests), a Java
## runtime (PySpark reading the export) and PostgreSQL (an Open WebUI database on PostgreSQL). Installed only when missing (root, or sudo).
APT = $(if $(filter 0,$(shell id -u)),,sudo) apt-get
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then $(APT) update && $(APT) install -y --no-install-recommends $$missing; fi

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Benchmarks against the baseline (1M runs; BENCH_ARGS="--quick" for a smoke run).
bench: install-bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-10m: install-bench
	$(BIN)/python -m bench.run --ten-million $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
