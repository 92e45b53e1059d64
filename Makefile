# The two commands of the README: `make demo` and `make test`.
# Each creates .venv when missing and is safe to run again.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STORE := .demo-store

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files record which extras are installed, so a re-run installs nothing new.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[pandas]' numpy
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed-demo
	rm -rf $(DEMO_STORE)
	RUNJOURNAL_STORE=$(DEMO_STORE) $(BIN)/python examples/quickstart.py
	RUNJOURNAL_STORE=$(DEMO_STORE) $(BIN)/runjournal ls
	RUNJOURNAL_STORE=$(DEMO_STORE) $(BIN)/python examples/show_results.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy src

test: lint
	RUNJOURNAL_STRICT=1 $(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_log.py

clean:
	rm -rf $(VENV) $(DEMO_STORE) .pytest_cache .mypy_cache .ruff_cache
