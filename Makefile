# bertloop: `make demo` runs the whole retraining loop; `make test` runs every check and test;
# `make test-fast` runs the tests that need no service and start no process.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: install demo up down test test-fast lint typecheck clean

# torch goes in first, pinned to the local CPU build: resolved from scratch as a
# dependency of transformers it would pull gigabytes of CUDA wheels.
# The runtime (the demo and the local stack) needs no test or lint tools; `make test` adds them.
$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[demo]"
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -e ".[dev,demo]"
	touch $(STAMP)

install: $(STAMP)

# Airflow asks for a login (the password is printed once, when it is made); AIRFLOW_LOGIN=off opts out.
AIRFLOW_LOGIN ?= $(or $(BERTLOOP_AIRFLOW_LOGIN),on)

demo: $(RUNTIME_STAMP)
	BERTLOOP_AIRFLOW_LOGIN=$(AIRFLOW_LOGIN) $(BIN)/python -m demo

# The local stack (Airflow UI and scheduler, MLflow UI, gateway) on a workspace: the demo's by default.
STACK_CONFIG ?= demo-workspace/bertloop.yaml
up: $(RUNTIME_STAMP)
	BERTLOOP_AIRFLOW_LOGIN=$(AIRFLOW_LOGIN) $(BIN)/python -m devtools.stack up --config $(STACK_CONFIG)

down: $(RUNTIME_STAMP)
	$(BIN)/python -m devtools.stack down --config $(STACK_CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

# Pure logic and tiny-model tests: no Airflow run, no PostgreSQL or Redis, no server or torchrun process.
test-fast: lint
	$(BIN)/pytest -m "not e2e and not integration and not processes"

clean:
	rm -rf demo-workspace workspace .pytest_cache .ruff_cache .mypy_cache
