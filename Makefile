# Everything from a fresh clone with only Python >= 3.11: no root, no Docker.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Run the pipeline on an embedded default: local S3 + embedded Redis + Celery worker and beat.
demo: $(STAMP)
	$(BIN)/trailpipe demo

## Run the test suite (real redis-server, moto S3 server, celery processes).
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## Lint (ruff) and types (mypy on pipeline/), as CI runs them.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .trailpipe .pytest_cache
