# Everything from a fresh clone with only Python >= 3.11: no root, no Docker.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The config the shortcuts below read: the demo's, unless CONFIG=path/to/config.yaml is given.
CONFIG ?= .trailpipe/demo/config.yaml

.PHONY: demo test lint install clean status tail deadletter check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools' notice for every editable install (no problem of this project) stays quiet.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet \
		--disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Run the pipeline on an embedded default: local S3 + embedded Redis + Celery worker and beat.
demo: $(STAMP)
	$(BIN)/trailpipe demo

## After the demo (or with CONFIG=FILE): what `trailpipe status`, `tail -n 20`, `deadletter list`
## and `check` say. They are .venv/bin/trailpipe's commands; activate with `. .venv/bin/activate`.
status: $(STAMP)
	$(BIN)/trailpipe status -c $(CONFIG)

tail: $(STAMP)
	$(BIN)/trailpipe tail -c $(CONFIG) -n 20

deadletter: $(STAMP)
	$(BIN)/trailpipe deadletter list -c $(CONFIG)

check: $(STAMP)
	$(BIN)/trailpipe check -c $(CONFIG)

## Run the test suite (real redis-server, moto S3 server, celery processes). Two test files
## at a time (each test starts its own servers on free ports): about 15 minutes on 2 cores
## (three at a time took 10, but oversubscribed the cores enough to make failover timings flaky).
## TEST_WORKERS=0 runs them one by one.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## Lint (ruff) and types (mypy on pipeline/ and workers/), as CI runs them.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .trailpipe .pytest_cache
