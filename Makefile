# Two commands matter: `make demo` and `make test`. Both create .venv when it
# is missing and install the package with the extras they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed

# The newest supported Python this machine has (the suite runs on it too, in .venv-newest): found on
# the PATH or, where pyenv's shims refuse a version that is not selected, by its path under pyenv.
SUPPORTED_NEWEST := 3.13 3.12
ifndef NEWEST_PYTHON
NEWEST_PYTHON := $(firstword $(foreach v,$(SUPPORTED_NEWEST),$(shell \
	for p in $$(command -v python$(v)) $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(v)*/bin/python$(v) 2>/dev/null); do \
		"$$p" -c "" 2>/dev/null && echo "$$p" && break; done)))
endif

.PHONY: demo report notebooks docs test test-newest pytest lint typecheck unit bench bench-smoke clean chromium

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo installs only what it runs (LangChain, its agents and the local server's request schema).
$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "Installing the demo's packages into $(VENV) (the first run takes a minute)..."
	$(PY) -m pip install --progress-bar on -e '.[demo]' | grep -v '^Requirement already satisfied' || true
	@$(PY) -c "import openrouter_attribution.demo, langchain.agents, openrouter" && touch $(DEMO_STAMP)

# Each run starts a fresh ledger in $(DEMO_DB); `make report` shows its per-user totals.
DEMO_DB ?= demo-usage.db

demo: $(DEMO_STAMP)
	$(PY) -m openrouter_attribution.cli demo --ledger $(DEMO_DB)

report: $(STAMP)
	$(PY) -m openrouter_attribution.cli report --db $(DEMO_DB) --by user

# Re-execute every notebook against the local server and save it with its outputs
# (`make test` fails when a committed notebook's outputs are stale).
notebooks: $(STAMP)
	$(PY) -m tests.notebooks.refresh

# Lint and formatting: `ruff format` is the formatter (run it to fix what --check reports). A `# fmt: skip`
# keeps a deliberately packed layout (long field lists, tables of cases) that it would spread one item a line.
lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks docs/sphinx_roles.py
	$(PY) -m ruff format --check src tests benchmarks docs/sphinx_roles.py

typecheck: $(STAMP)
	$(PY) -m mypy

# The documentation site (mkdocs.yml, docs/), built offline into build/site; --strict turns every
# warning (a broken link or reference, a docstring mkdocstrings cannot read) into a failure.
# NO_MKDOCS_2_WARNING silences the banner Material prints on every build: Material for MkDocs is
# maintained until May 2027 (critical fixes and security updates), its successor is Zensical.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# The suite runs on the oldest supported Python ($(PYTHON), with lint, types and the benchmark smoke run)
# and again on the newest one the machine has.
test: $(STAMP) lint typecheck docs chromium
	$(PY) -m pytest -q
	$(PY) benchmarks/run.py --smoke --no-profile --out $(VENV)/bench-smoke
	$(MAKE) test-newest

test-newest:
	@if [ -z "$(NEWEST_PYTHON)" ]; then echo "No Python $(SUPPORTED_NEWEST) on this machine: the suite ran on $(PYTHON) only."; \
	else echo "The suite again on $$($(NEWEST_PYTHON) --version) ($(NEWEST_PYTHON))"; \
	$(MAKE) --no-print-directory pytest VENV=.venv-newest PYTHON=$(NEWEST_PYTHON); fi

pytest: $(STAMP) chromium
	$(PY) -m pytest -q

# The dashboard's browser tests (tests/browser) drive Debian's Chromium through Playwright; it comes from
# apt, never from `playwright install` (which downloads a browser build). CI runs as root; elsewhere sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends chromium)

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
	rm -rf $(VENV) .venv-newest $(BENCH_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
