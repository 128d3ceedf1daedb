# Every target installs what it needs (uv, then the locked environment) before it runs.
SHELL := /bin/bash
# Installs compile bytecode: where Python may not cache it (PYTHONDONTWRITEBYTECODE, common in
# containers and set on CI), every process would otherwise compile Dagster and GE from source.
export UV_COMPILE_BYTECODE := 1
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(HOME)/.local/bin/uv
endif

.PHONY: demo test ui sim lint format bench setup

setup:
	@command -v uv >/dev/null 2>&1 || test -x $(UV) || python3 -m pip install --quiet --user uv
	@$(UV) sync --frozen --quiet

demo: setup  ## simulator -> backfill -> stream -> compact -> aggregate, then a summary
	@$(UV) run --frozen marketlake demo

# Two workers, a test file each at a time: most of the end-to-end tests wait on servers and
# daemons, so two share 2 cores well (the suite: 8-10 minutes in CI's runs; -n 4 was slower).
test: setup  ## the whole test suite, offline
	@$(UV) run --frozen pytest -n 2 --dist loadfile

ui: setup  ## Dagster UI + daemon on http://127.0.0.1:3000, beside the simulator
	@$(UV) run --frozen marketlake ui

sim: setup  ## the local exchange simulator on http://127.0.0.1:8765
	@$(UV) run --frozen marketlake sim --port 8765

lint: setup
	@$(UV) run --frozen ruff check . && $(UV) run --frozen ruff format --check .

format: setup
	@$(UV) run --frozen ruff check --fix . && $(UV) run --frozen ruff format .

bench: setup  ## speed measurements; rewrites benchmarks/RESULTS.md
	@$(UV) run --frozen python -m benchmarks
