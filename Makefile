# Developer and CI entry points: make run | test | lint | typecheck | bench
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Touched after each install: pip runs again only when pyproject.toml is newer.
STAMP := $(VENV)/.scloud-installed

.PHONY: install run test lint typecheck bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/scloud run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --ignore=tests/bench tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	shopt -s nullglob; for bench in tests/bench/*.py; do \
		echo "== $$bench"; $(BIN)/python "$$bench"; \
	done
