# Two commands matter: `make demo` and `make test`. Both create .venv when it
# is missing and install the package with every extra it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo report notebooks test lint typecheck unit bench bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Each run starts a fresh ledger in $(DEMO_DB); `make report` shows its per-user totals.
DEMO_DB ?= demo-usage.db

demo: $(STAMP)
	$(PY) -m openrouter_attribution.cli demo --ledger $(DEMO_DB)

report: $(STAMP)
	$(PY) -m openrouter_attribution.cli report --db $(DEMO_DB) --by user

# Re-execute every notebook against the local server and save it with its outputs
# (`make test` fails when a committed notebook's outputs are stale).
notebooks: $(STAMP)
	$(PY) -m tests.notebooks.refresh

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

test: $(STAMP) lint typecheck
	$(PY) -m pytest -q
	$(PY) benchmarks/run.py --smoke --no-profile --out $(VENV)/bench-smoke

# Benchmarks get their own environment: the peer integrations they compare against pin versions
# (openai<3, openrouter<1) that conflict with this package, so they are installed without their pins.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
PEERS := langchain-openrouter llama-index-llms-openrouter llama-index-llms-openai llama-index-llms-openai-like

$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -e '.[dev,bench]'
	$(BENCH_PY) -m pip install --quiet --no-deps $(PEERS)
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_PY) benchmarks/run.py

bench-smoke: $(STAMP)
	$(PY) benchmarks/run.py --smoke

clean:
	rm -rf $(VENV) $(BENCH_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
