# The two commands a new user types: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEPS := $(VENV)/.deps-installed
# llama-cpp-python (extra `local`) is built from its sdist, by default with -march=native. On a CPU with
# AMX that compiles llama.cpp's AMX kernels, which GCC 12 (Debian 12) miscompiles: its `_tile_loadconfig`
# claims to read 8 bytes, so the tile-config stores are dropped and the first batched decode dies with a
# segfault (#GP on ldtilecfg). GGML_NATIVE=OFF builds the portable AVX2/FMA/F16C set instead: no AVX-512,
# no AMX, a few % slower on the 135M model, and the same wheel on every x86-64 machine.
LLAMA_CPP := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
# pip's wheel cache is keyed by the sdist alone, not by CMAKE_ARGS, so it would hand back a wheel built
# with other flags (the default -march=native one): this build gets its own cache, keyed by the flags.
LLAMA_PIP_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/proctor/pip-llama-cpp-$(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)

.PHONY: demo test lint deps system-deps bench clean

$(DEPS): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q -U pip
	@echo ">> installing proctor and its dependencies into $(VENV)"
	@echo ">> the first time this builds llama-cpp-python from source: it takes a few minutes (pip caches the wheel)"
	@# torch first, pinned to the CPU build on this machine's disk, so nothing pulls a multi-GB CUDA build
	@$(PIP) install -q "torch==2.13.0"
	@# llama-cpp-python first, built with LLAMA_CMAKE_ARGS (--force-reinstall replaces a build made with other flags)
	@CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' PIP_CACHE_DIR='$(LLAMA_PIP_CACHE)' $(PIP) install -q --force-reinstall --no-deps '$(LLAMA_CPP)'
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

test: deps system-deps lint
	@$(PY) -m pytest $(PYTEST_ARGS)

# ruff (lint + format) and pyright (basic; the public API strict in tests/test_typing.py), before the tests.
lint: deps
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/pyright

bench: deps
	@$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) .proctor
