# The two commands of the README's quick start. Both set up .venv first (once).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@echo "== audit doctor: what this machine can measure"
	@$(BIN)/audit doctor
	@echo
	@echo "== audit estimate: Strubell et al. (2019), Table 3, Transformer (big): 8 P100, 1515.43 W, 84 h"
	@$(BIN)/audit estimate --hours 84 --watts 1515.43 --pue 1.58 --intensity "0.954 lb/kWh"

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python scripts/bench_ledger.py
	$(BIN)/python scripts/bench_meter.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
