# The two commands a new user types: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEPS := $(VENV)/.deps-installed

.PHONY: demo test deps system-deps bench clean

$(DEPS): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q -U pip
	@echo ">> installing proctor and its dependencies into $(VENV)"
	@echo ">> the first time this builds llama-cpp-python from source: it takes a few minutes (pip caches the wheel)"
	@# torch first, pinned to the CPU build on this machine's disk, so nothing pulls a multi-GB CUDA build
	@$(PIP) install -q "torch==2.13.0"
	@$(PIP) install -q -e '.[local,embeddings,dev]'
	@touch $(DEPS)

deps: $(DEPS)

# Debian packages the tests drive: headless Chromium (console browser tests) and PostgreSQL (scale-out).
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo ">> installing chromium, chromium-driver and postgresql (Debian packages)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver postgresql >/dev/null; \
	fi

demo: deps
	@$(PY) examples/feature_team.py

test: deps system-deps
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: deps
	@$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) .proctor
