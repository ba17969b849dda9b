# drover — `make run` to try it, `make test` to test it. Both set up .venv on their own.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help

.PHONY: help install debs run test bench lint types check fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml hatch_build.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "drover needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install drover with its dev tools

debs: ## install the Debian packages the tests use (systemd, dbus), if missing
	@scripts/debian-packages

run: install ## start drover on its embedded default: nats-server, server, a local agent
	$(BIN)/drover dev

test: install debs ## run the test suite (real nats-server, real systemd in a namespace)
	$(BIN)/pytest

bench: install debs ## run the benchmarks (real systemd, nats-server, agent); ~2 min, needs root
	$(BIN)/python -m bench.agent_systemd

lint: install ## ruff format check and lint
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests

types: install ## mypy strict over src and tests
	$(BIN)/mypy

check: lint types test ## everything CI runs

fmt: install ## format and autofix
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean: ## remove the venv, caches and the dev data dir
	rm -rf $(VENV) .drover .pytest_cache .mypy_cache .ruff_cache src/drover/_build_info.json
