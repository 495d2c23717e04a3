# `make demo` and `make test` create .venv when missing and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_CORE := $(VENV)/.core-installed
STAMP_TRAIN := $(VENV)/.train-installed
STAMP_TEST := $(VENV)/.test-installed

.PHONY: demo test bench fuzz lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_CORE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# the demo ends with generation by a tiny local model: torch and transformers
$(STAMP_TRAIN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[train]"
	touch $@ $(STAMP_CORE)

# the tests build tiny Qwen VL models and run TRL on CPU, and a tiny diffusers pipeline: the
# train and imagine extras too
$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[train,test,imagine]"
	touch $@ $(STAMP_CORE) $(STAMP_TRAIN)

demo: $(STAMP_TRAIN)
	$(BIN)/hoidata demo --out data/demo

test: $(STAMP_TEST)
	$(BIN)/ruff check hoidata tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --durations=10

# the seeded fuzz suite with many more cases than `make test` runs (tests/fuzz)
fuzz: $(STAMP_TEST)
	HOIDATA_FUZZ=long $(BIN)/python -m pytest -n 2 tests/fuzz

bench: $(STAMP_TEST)
	$(BIN)/python bench/run.py

lint: $(STAMP_TEST)
	$(BIN)/ruff check hoidata tests bench
	$(BIN)/lint-imports
	$(BIN)/ruff format --check hoidata tests bench

clean:
	rm -rf $(VENV) data/demo bench/out
