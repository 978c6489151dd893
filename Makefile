# One entry point for checks: what a person runs is exactly what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench chaos install clean serve screenshots

# The venv is rebuilt whenever pyproject.toml changes, so a fresh clone and a stale
# machine both end up with exactly what the project declares.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The review page's browser test drives Debian's Chromium and ChromeDriver (Playwright is
# pointed at /usr/bin/chromium; it downloads no browser of its own). Installed once.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		chromium chromium-driver

# The sandbox (run_python) runs code in Debian's bubblewrap; its tests need the real thing.
BWRAP := /usr/bin/bwrap
$(BWRAP):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		bubblewrap

# rt.draw() draws the run graph with Graphviz's dot (Debian's graphviz), offline; the
# notebook and its test show it. Installed once.
DOT := /usr/bin/dot
$(DOT):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		graphviz

# The tracing tests send a run's spans to a real Arize Phoenix on 127.0.0.1 and read them back.
# Phoenix is large, so it gets a virtual environment of its own, kept across clones under
# ~/.cache and installed once; the tests find its Python through AGENTRT_PHOENIX_PYTHON.
PHOENIX_VERSION := 20.26.1
PHOENIX_VENV ?= $(HOME)/.cache/agentrt/phoenix-$(PHOENIX_VERSION)
PHOENIX_PYTHON := $(PHOENIX_VENV)/bin/python
$(PHOENIX_VENV)/.installed:
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_PYTHON) -m pip install --quiet --upgrade pip
	$(PHOENIX_PYTHON) -m pip install --quiet 'arize-phoenix==$(PHOENIX_VERSION)'
	touch $@

# The Postgres store's tests start a throwaway server of their own from Debian's postgresql
# (initdb and pg_ctl in /usr/lib/postgresql/*/bin; tests/postgres.py). Installed once.
.PHONY: postgresql
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			postgresql; }

# The README's picture of a run in Arize Phoenix (docs/phoenix-trace.png), taken again.
screenshots: $(STAMP) $(CHROMIUM) $(PHOENIX_VENV)/.installed
	AGENTRT_PHOENIX_PYTHON=$(PHOENIX_PYTHON) $(BIN)/python docs/screenshots.py

demo: $(STAMP)
	$(BIN)/agentrt demo --db agentrt.db

# The demo app behind the HTTP API on :8000. Make its API keys first, with the database alone:
# `agentrt keys create --id alice --tenant acme --role operator --db agentrt.db`.
serve: $(STAMP)
	$(BIN)/agentrt serve --app agentrt.examples.refund_desk:build_runtime --db agentrt.db

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(CHROMIUM) $(BWRAP) $(DOT) postgresql $(PHOENIX_VENV)/.installed
	AGENTRT_PHOENIX_PYTHON=$(PHOENIX_PYTHON) $(BIN)/python -m pytest

test: lint typecheck pytest

# The bench extra (cel-python, for the CEL library comparison) is not part of `make test`.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py

# Crash chaos: 500+ real SIGKILLs at seeded points of a four-effect workflow, each run
# resumed to the end; prints kills, resumes, reconciles, duplicates (0) and lost (0).
# CHAOS_MODE=postgres: 3 `agentrt worker` processes on a throwaway PostgreSQL (or
# CHAOS_DB=postgresql://...), 200 runs, a random worker SIGKILLed 100+ times and restarted.
CHAOS_MODE ?= sqlite
CHAOS_KILLS ?= $(if $(filter postgres,$(CHAOS_MODE)),100,500)
CHAOS_RUNS ?= 200
CHAOS_SEED ?= 1
chaos: $(STAMP) $(if $(filter postgres,$(CHAOS_MODE)),postgresql)
ifeq ($(CHAOS_MODE),postgres)
	$(BIN)/python -m tests.chaos_workers --runs $(CHAOS_RUNS) --min-kills $(CHAOS_KILLS) \
		--seed $(CHAOS_SEED) $(if $(CHAOS_DB),--db $(CHAOS_DB))
else
	$(BIN)/python -m tests.chaos_app --min-kills $(CHAOS_KILLS) --seed $(CHAOS_SEED)
endif

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache agentrt.egg-info
