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

.PHONY: run stop test check lint format-check typecheck deps openapi-lint check-deploy bench contracts clean install runtime-lock deploy-check-tools

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; Python 3.11 is required (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	@# Bytecode compiled at install: uv compiles none by default, and every process started (each
	@# service, each test's subprocess) would compile SQLAlchemy, FastAPI, pydantic... again: 3 CPU s.
	@$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements.lock
	@$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

# Spectral, and Swagger UI and ReDoc that the gateway serves, come from the npm registry; install scripts are not needed (and only report usage).
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm not found; Node.js and npm are needed (the gateway's pages, make check)"; exit 1; }
	@npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

install: $(STAMP)

run: $(STAMP) $(NODE_STAMP)
	@$(PY) -m deploy.local.stack run

stop:
	@test -x $(PY) && $(PY) -m deploy.local.stack stop || echo "nothing to stop"

test: $(STAMP) $(NODE_STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@$(PY) -m bench.run $(NAME)

# Every step runs, so one report shows all that fails; the target fails if any step did.
check: $(STAMP) $(NODE_STAMP)
	@status=0; \
	for step in lint format-check typecheck deps openapi-lint check-deploy; do \
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

# The image's requirements: pyproject's dependencies minus the local stack's embedded servers,
# at the lock's versions (deploy/runtime_requirements.py).
runtime-lock: $(STAMP)
	@$(PY) -m deploy.runtime_requirements | $(UV) pip compile --quiet - -c requirements.lock --python-version 3.11 --no-header -o deploy/requirements-runtime.txt.new
	@{ head -2 deploy/requirements-runtime.txt; cat deploy/requirements-runtime.txt.new; } > deploy/requirements-runtime.txt.tmp
	@mv deploy/requirements-runtime.txt.tmp deploy/requirements-runtime.txt && rm deploy/requirements-runtime.txt.new

# The offline deploy checkers (kubernetes-validate, checkov, hadolint) in their own venv: their pins
# clash with the project's lock, and `uv pip sync` of .venv would remove them.
DEPLOY_TOOLS := $(VENV)/deploy-check
$(DEPLOY_TOOLS)/.installed: deploy/requirements-check.txt | $(STAMP)
	@test -x $(DEPLOY_TOOLS)/bin/python || $(PYTHON) -m venv $(DEPLOY_TOOLS)
	@$(DEPLOY_TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	@$(DEPLOY_TOOLS)/bin/uv pip sync --quiet --python $(DEPLOY_TOOLS)/bin/python deploy/requirements-check.txt
	@touch $@

deploy-check-tools: $(DEPLOY_TOOLS)/.installed

# Manifests against Kubernetes 1.34, checkov, hadolint, compose's structure: no Docker, no cluster.
check-deploy: $(STAMP) $(DEPLOY_TOOLS)/.installed
	@DEPLOY_CHECK_REQUIRED=1 $(PY) -m pytest -q -p no:cacheprovider tests/deploy/test_manifests.py tests/deploy/test_image_and_compose.py
