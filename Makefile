# The two commands of the README: `make demo` and `make test`.
# Each creates .venv when missing and is safe to run again.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STORE := .demo-store
# `make bench` uses its own venv: the peers it compares with never enter .venv.
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin
PEERS_REQ := benchmarks/peers/requirements.txt
BENCH_ARGS ?=

.PHONY: demo test lint bench bench-scale reliability clean

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

$(BENCH_BIN)/python:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip

# All peers at once; if that fails, one by one, so one broken install stops no other.
$(BENCH_VENV)/.installed: pyproject.toml $(PEERS_REQ) | $(BENCH_BIN)/python
	$(BENCH_BIN)/python -m pip install --quiet -e '.[pandas]'
	$(BENCH_BIN)/python -m pip install --quiet -r $(PEERS_REQ) || \
	  grep -v '^#' $(PEERS_REQ) | while read -r req; do \
	    $(BENCH_BIN)/python -m pip install --quiet "$$req" || echo "bench: could not install $$req"; \
	  done
	touch $@

# About 30 minutes; `make bench BENCH_ARGS="--size small --repeats 1"` for a quick look.
bench: $(BENCH_VENV)/.installed
	$(BENCH_BIN)/python benchmarks/bench_log.py
	$(BENCH_BIN)/python -m benchmarks.peers $(BENCH_ARGS)

# The scale case of issue 5 (10,000 runs, 50M values: about an hour, 6 GB of disk);
# `make bench-scale SCALE_ARGS="--scale 0.05"` for a quick look.
bench-scale: $(BENCH_VENV)/.installed
	$(BENCH_BIN)/python benchmarks/bench_scale.py $(SCALE_ARGS)

# The reliability suite, its figures written into docs/reliability.md (SOAK=10 for a long run).
SOAK ?= 1
reliability: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/reliability_report.py --soak $(SOAK)
	$(BIN)/python benchmarks/bench_fsync.py --doc docs/reliability.md

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DEMO_STORE) .pytest_cache .mypy_cache .ruff_cache
