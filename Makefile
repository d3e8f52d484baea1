# Koppelhub: two commands on a fresh machine with Python 3.11+ and no Docker.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run shell test lint typecheck bench fuzz faults clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

RUN_STAMP := $(VENV)/.installed-run

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Running needs the project only, not its test tools.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

run: $(RUN_STAMP)  ## all roles in one process, embedded broker and database unless configured
	$(BIN)/koppelhub run

shell: $(RUN_STAMP)  ## a shell with the koppelhub command on PATH (it lives in .venv/bin)
	@echo "koppelhub is on PATH in this shell; exit to leave it."
	PATH="$(CURDIR)/$(BIN):$$PATH" $${SHELL:-/bin/sh}

test: $(STAMP)  ## the whole suite, embedded infrastructure included
	$(BIN)/ruff check hub schemas subscriptions connectors tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m schemas.generate --check
	$(BIN)/pytest -q -n 3 --dist worksteal --durations=15

lint: $(STAMP)
	$(BIN)/ruff check hub schemas subscriptions connectors tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

fuzz: $(STAMP)  ## a long schemathesis run against the live API (make test runs a bounded one)
	KOPPELHUB_FUZZ_EXAMPLES=$${KOPPELHUB_FUZZ_EXAMPLES:-500} $(BIN)/pytest -q -p no:cacheprovider tests/fuzz/test_openapi_fuzz.py

faults: $(STAMP)  ## the fault suite at full size: 100,000 events, 12 kills (each kind twice) at random points (README figures)
	KOPPELHUB_FAULT_EVENTS=$${KOPPELHUB_FAULT_EVENTS:-100000} KOPPELHUB_FAULT_KILLS=$${KOPPELHUB_FAULT_KILLS:-12} \
		KOPPELHUB_FAULT_KEYS=$${KOPPELHUB_FAULT_KEYS:-1000} \
		$(BIN)/pytest -q -s -p no:cacheprovider tests/faults

bench: $(STAMP)  ## the five benchmarks with --check, one summary table (README "Performance")
	$(BIN)/python -m benchmarks.suite --check $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
