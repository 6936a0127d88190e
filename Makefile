# The two commands: `make run` brings the whole stack up with demo data; `make test` runs the tests.
# `make check` runs the static checks (style, types, dependencies, the OpenAPI document).
# Everything installs into .venv from requirements.lock and node_modules from package-lock.json
# (both pinned); nothing is installed system-wide.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CODE := services gateway deploy bench tests
TYPED := services gateway deploy bench
OPENAPI := build/openapi.json
NAME ?=
PYTEST_ARGS ?=

.PHONY: run stop test check lint format-check typecheck deps openapi-lint bench contracts clean install

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; Python 3.11 is required (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	@$(UV) pip sync --quiet --python $(PY) requirements.lock
	@$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

# Spectral comes from the npm registry; install scripts are not needed (and only report usage).
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm not found; Node.js and npm are needed for make check"; exit 1; }
	@npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(PY) -m deploy.local.stack run

stop:
	@test -x $(PY) && $(PY) -m deploy.local.stack stop || echo "nothing to stop"

test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@$(PY) -m bench.run $(NAME)

# Every step runs, so one report shows all that fails; the target fails if any step did.
check: $(STAMP) $(NODE_STAMP)
	@status=0; \
	for step in lint format-check typecheck deps openapi-lint; do \
	  echo "== $$step"; $(MAKE) --no-print-directory $$step || status=1; \
	done; \
	exit $$status

lint: $(STAMP)
	@$(VENV)/bin/ruff check $(CODE)

format-check: $(STAMP)
	@$(VENV)/bin/ruff format --check $(CODE)

typecheck: $(STAMP)
	@$(VENV)/bin/mypy $(TYPED)

deps: $(STAMP)
	@$(VENV)/bin/deptry .

# The gateway's merged document, built in-process from the services' apps (no server runs).
openapi-lint: $(STAMP) $(NODE_STAMP)
	@$(PY) -m deploy.openapi_dump $(OPENAPI)
	@node_modules/.bin/spectral lint $(OPENAPI) --ruleset .spectral.yaml --fail-severity warn --quiet

contracts: $(STAMP)
	@$(PY) -m deploy.contracts

clean:
	rm -rf $(VENV) node_modules build .pytest_cache .mypy_cache .ruff_cache bench/results
