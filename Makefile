# Two entry points (see README): `make run` runs the bundled scenario, `make test` the suite.
# Both create the virtual environment on first use; nothing else needs installing.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test lint typecheck bench format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,openai,postgres,serve,studio,ops,bench,sim]"
	# schemathesis in an environment of its own: it needs jsonschema-rs >= 0.45, langgraph-api < 0.45
	$(PYTHON) -m venv $(VENV)/tools/schemathesis
	$(VENV)/tools/schemathesis/bin/python -m pip install -q "schemathesis==4.32.5"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/stellar-graph run vegapunk

test: $(STAMP) lint typecheck
	bash tools/ensure_system_packages.sh
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests tools graphs

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests tools graphs
	$(BIN)/ruff check --fix src tests tools graphs

bench: $(STAMP)
	$(BIN)/python tools/bench_allocation.py --quick
	$(BIN)/python tools/bench_prediction.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .stellar_graph reports
