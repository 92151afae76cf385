# The two commands of the README's quick start. Both set up .venv first (once).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench browser clean

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/audit demo

# Debian's Chromium, for the test that opens the HTML report in a real browser. Installed where
# this runs as root (CI); elsewhere that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: the browser test will skip (CI=true makes it fail)"; }

test: $(STAMP) browser
	$(BIN)/ruff check auditor integrations tests scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python scripts/bench_ledger.py
	$(BIN)/python scripts/bench_meter.py
	$(BIN)/python scripts/bench_report.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
