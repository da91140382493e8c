# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench bench-10m clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

## Create the venv, install, apply migrations, serve on 127.0.0.1:8080 with data/flowhistory.duckdb.
run: install
	$(BIN)/flowhistory db upgrade
	$(BIN)/flowhistory serve

## Install what tests need and run the whole suite (lint first: it is part of the contract).
test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

## What the tests drive besides Python: Debian's Chromium (the dashboard's browser tests), a Java
## runtime (PySpark reading the export) and PostgreSQL (an Open WebUI database on PostgreSQL). Installed only when missing (root, or sudo).
APT = $(if $(filter 0,$(shell id -u)),,sudo) apt-get
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then $(APT) update && $(APT) install -y --no-install-recommends $$missing; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Benchmarks against the baseline (1M runs; BENCH_ARGS="--quick" for a smoke run).
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-10m: install
	$(BIN)/python -m bench.run --ten-million $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
