# The two commands: `make demo` and `make test`. Each sets up .venv on a fresh machine first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch 2.13.0 is the build these machines install from local disk (no download).
TORCH  := torch==2.13.0
HYPOTHESIS_PROFILE ?= ci

.PHONY: setup demo test lint thorough clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test,cli,notebooks]'
	touch $@

demo: setup
	$(BIN)/python -m reference.demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/python -m pytest

thorough:
	$(MAKE) test HYPOTHESIS_PROFILE=thorough

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
