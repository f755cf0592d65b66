# The set-up contract: `make run` sets up and opens the app on the shipped recording;
# `make test` sets up and runs the tests. Both work from a clean clone.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint bench
setup:
	@bash scripts/setup.sh

run: setup
	$(VENV)/bin/dvsapp $(ARGS)

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check dvsapp tests benchmarks scripts examples
	$(VENV)/bin/ruff format --check dvsapp tests benchmarks scripts examples

bench: setup
	$(PY) benchmarks/bench_decoders.py
	$(PY) benchmarks/bench_binner.py
	$(PY) benchmarks/bench_step.py
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/bench_gui.py
	$(PY) benchmarks/bench_emulator.py
	$(PY) benchmarks/bench_network.py
