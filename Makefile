# drover — `make run` to try it, `make test` to test it. Both set up .venv on their own.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help

.PHONY: help install debs gui run test chaos bench lint types check fmt clean

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

# The GUI: web/ (TypeScript, Preact) built by Vite into src/drover/gui/dist, which the server
# serves and the wheel carries. Rebuilt when a source or the lockfile changes.
GUI := src/drover/gui/dist/index.html
WEB_DEPS := web/node_modules/.installed-stamp
WEB_SOURCES := $(shell find web/src web/public web/index.html web/vite.config.ts web/tsconfig.json -type f 2>/dev/null)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(GUI): $(WEB_DEPS) $(WEB_SOURCES)
	cd web && npm run --silent build

gui: debs $(GUI) ## build the web GUI (needs Node.js and npm)

debs: ## install the Debian packages the tests use (systemd, dbus), if missing
	@scripts/debian-packages

run: install gui ## start drover on its embedded default: nats-server, server, a local agent
	$(BIN)/drover dev

# pytest on every core (pytest-xdist): each worker starts its own nats-servers, PostgreSQL,
# systemd namespace and browser, so tests share nothing but the machine.
test: install debs gui ## run the tests: the GUI's own (Vitest), then pytest (real NATS, systemd, Chromium)
	cd web && npm test --silent
	$(BIN)/pytest -n auto --dist load --durations=25

# The fault-injection suite in full: each scenario of tests/chaos many cycles over, one at a
# time (their timing is part of what they test), and the outposts' cuts at their full length
# (tests/outpost). Each scenario's counts go to CHAOS_REPORT, from which docs/reliability.md
# takes its figures. `make test` runs them a cycle or two, the cuts time-compressed.
CHAOS_REPORT ?= chaos-report.jsonl
chaos: install debs ## the fault-injection suite in full (about an hour); counts in chaos-report.jsonl
	rm -f $(CHAOS_REPORT)
	DROVER_CHAOS=full DROVER_CHAOS_REPORT=$(abspath $(CHAOS_REPORT)) \
		$(BIN)/pytest -n 0 --no-cov -p no:cacheprovider tests/chaos tests/outpost

bench: install debs ## run the benchmarks, write docs/benchmarks.{json,md}; ~10 min, needs root
	$(BIN)/python -m bench.all

lint: install ## ruff format check and lint
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

types: install ## mypy strict over src, tests and bench
	$(BIN)/mypy

check: lint types test ## everything CI runs

fmt: install ## format and autofix
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean: ## remove the venv, caches and the dev data dir
	rm -rf $(VENV) .drover .pytest_cache .mypy_cache .ruff_cache src/drover/_build_info.json \
		src/drover/gui/dist web/node_modules
