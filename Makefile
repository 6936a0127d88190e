# The two commands: `make run` brings the whole stack up with demo data; `make test` runs the tests.
# Everything installs into .venv from requirements.lock (pinned); nothing is installed system-wide.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
NAME ?=
PYTEST_ARGS ?=

.PHONY: run stop test test-fast bench lint typecheck contracts clean install

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; Python 3.11 is required (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	@$(UV) pip sync --quiet --python $(PY) requirements.lock
	@$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(PY) -m deploy.local.stack run

stop:
	@test -x $(PY) && $(PY) -m deploy.local.stack stop || echo "nothing to stop"

test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@$(PY) -m bench.run $(NAME)

lint: $(STAMP)
	@$(VENV)/bin/ruff check services gateway deploy bench tests

typecheck: $(STAMP)
	@$(VENV)/bin/mypy services gateway

contracts: $(STAMP)
	@$(PY) -m deploy.contracts

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/results
