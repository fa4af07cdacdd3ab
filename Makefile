# Developer and CI entry points: make run | test | lint | typecheck | bench
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Touched after each install: pip runs again only when pyproject.toml is newer.
STAMP := $(VENV)/.scloud-installed
# Passed to every benchmark, e.g. make bench BENCH_ARGS="--scale 0.1".
BENCH_ARGS ?=

.PHONY: install starter-image run test lint typecheck bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Debian packages: libvirt's headers for libvirt-python, and QEMU/libvirtd for real guests.
SYSTEM_PACKAGES := pkg-config libvirt-dev libvirt-daemon-system libvirt-daemon-driver-qemu \
	libvirt-clients qemu-system-x86 qemu-utils busybox-static cpio qemu-guest-agent
SYSTEM_STAMP := $(VENV)/.system-packages

$(SYSTEM_STAMP): Makefile | $(BIN)/python
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "install as root: apt-get install $$missing"; exit 1; fi; \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	touch $@

$(STAMP): pyproject.toml | $(SYSTEM_STAMP)
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

install: $(STAMP)

# The first start's image (a busybox guest on Debian's cloud kernel, ~30 MB, cached): built
# once here; `scloud run` starts without it (and says so) when this machine cannot build it.
STARTER_IMAGE_DIR ?= /var/cache/scloud/starter
starter-image: $(STAMP)
	$(BIN)/python -m gateways.starter_image $(STARTER_IMAGE_DIR) || true

run: $(STAMP) starter-image
	SCLOUD_STARTER_IMAGE_DIR=$${SCLOUD_STARTER_IMAGE_DIR:-$(STARTER_IMAGE_DIR)} $(BIN)/scloud run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --ignore=tests/bench tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Each benchmark is a module with a __main__ guard, run from the repository root so that
# it can import its helpers (tests/bench/common.py has none and is skipped).
bench: $(STAMP)
	shopt -s nullglob; for bench in tests/bench/*.py; do \
		grep -q '^if __name__ == "__main__":' "$$bench" || continue; \
		module=$${bench%.py}; module=$${module//\//.}; \
		echo "== $$module"; $(BIN)/python -m "$$module" $(BENCH_ARGS); \
	done
