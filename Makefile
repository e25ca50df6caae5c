# dynlab: `make run` runs the main job end to end, `make test` runs the tests.
# Both set up a virtual environment in .venv from nothing (CPU build of torch).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch that lies on this machine's disk; an unpinned torch would pull a CUDA build.
TORCH_PIN ?= torch==2.13.0
TRITON_PIN ?= triton==3.6.0

.PHONY: setup run test test-slow test-all bench clean

$(BIN)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)" "$(TRITON_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/dynlab run experiment=quickstart

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: setup
	$(BIN)/python benchmarks/bench_lorenz96.py --simulate

clean:
	rm -rf $(VENV) data runs
