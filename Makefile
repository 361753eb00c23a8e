# The two commands of the README. Both set up what they need, idempotently:
#   make run   - install, then start the backend (7071) with the embedded emulator (8888);
#                make run ARGS=--keyless runs the whole local stack keyless (Entra ID only)
#   make test  - install (incl. dev tools, Node clients, Debian's chromium), lint, type-check, test
# and, not run by CI:
#   make bench - the benchmarks behind README's Performance table, each printing its ratio to
#                a baseline; needs Debian's wrk and taskset (installed here when run as root)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-stamp
DEV_STAMP := $(VENV)/.dev-stamp
NODE_STAMP := node_modules/.install-stamp
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: run test lint typecheck unit bench install install-dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(RUN_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(RUN_STAMP) $(NODE_STAMP)

install-dev: $(DEV_STAMP) $(NODE_STAMP) browser

# Debian's chromium for the browser test: Playwright's own browser download is not
# available here, so the test points Playwright at /usr/bin/chromium.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: /usr/bin/chromium is missing; the browser test will be skipped (apt-get install chromium)"; \
	  fi; \
	fi

run: install
	$(BIN)/python -m app $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --explicit-package-bases tests

unit: $(DEV_STAMP)
	$(BIN)/pytest tests/unit -q

test: install-dev lint typecheck
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine -q || true
	$(BIN)/coverage report

# Each script runs the project and its baseline side by side and prints the ratio; all run,
# and the target fails at the end if one exited non-zero (an error; keyless.py and
# outbound_throughput.py also exit 1 below their target). About 5 minutes on two cores.
# wrk drives negotiate, webhook and keyless' negotiate section; emulator_broadcast uses the
# Node clients of `npm ci`; idle_connections opens 10,000 WebSockets (BENCH_IDLE=5000 for less).
BENCH_IDLE ?= 10000
bench: install
	@if ! command -v wrk >/dev/null || ! command -v taskset >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's wrk for the benchmarks"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk util-linux >/dev/null; \
	  else \
	    echo "make bench needs wrk and taskset: apt-get install wrk util-linux"; exit 1; \
	  fi; \
	fi
	@failed=; \
	for cmd in "negotiate.py" "webhook.py" "keyless.py" "outbound_throughput.py" \
	    "emulator_broadcast.py --clients 100,1000 --rounds 3" \
	    "idle_connections.py --connections $(BENCH_IDLE)"; do \
	  echo "== bench/$$cmd"; \
	  $(BIN)/python bench/$$cmd || failed="$$failed $${cmd%% *}"; \
	done; \
	if [ -n "$$failed" ]; then echo "below target or failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) node_modules .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache test-output
