# Modamoda — every target sets itself up (venv with pinned requirements) on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt inference_container/requirements*.txt | sha1sum | cut -c1-12)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv demo test lint format synth deploy clean

$(STAMP):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .  # the `modamoda` command-line client
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

demo: venv
	$(PY) -m local.demo $(DEMO_ARGS)

.PHONY: serve
# The demo, then the stack stays up for a browser: the PWA on http://127.0.0.1:8787 (API :8788); Ctrl-C stops it.
serve: venv
	$(PY) -m local.demo --serve $(DEMO_ARGS)

test: venv
	@scripts/ensure_chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# The heavier variants of what `make test` runs: the reliability suite with 32 concurrent customers x 4 jobs and
# repeated fault rounds, and a 500-photo drop through the local stack (about 15 minutes on 2 cores).
.PHONY: stress
stress: venv
	MODAMODA_STRESS=1 MODAMODA_LOAD_USERS=32 MODAMODA_LOAD_JOBS=4 MODAMODA_BULK_500=1 \
		$(PY) -m pytest tests/reliability tests/local/test_bulk.py tests/web/test_error_states.py tests/functions/api/test_schemathesis.py $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy functions inference_container/modamoda_inference local infra app.py modamoda_cli

.PHONY: lock
# The Lambda layer's lock: functions/requirements.txt resolved for python3.12/arm64 with every wheel's hash (PyPI).
lock: venv
	$(PY) -m infra.layer_lock

.PHONY: openapi
# The API's OpenAPI document, generated from functions/api/handler.py (tests check the committed copy).
openapi: venv
	$(PY) scripts/openapi.py

format: venv
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Offline synthesis (no asset bundling). `make deploy` builds the arm64 dependency layer (pip, from PyPI) first.
synth: venv
	@command -v node >/dev/null 2>&1 || { echo "node is required for CDK synthesis"; exit 1; }
	$(PY) -m infra.synth $(or $(SYNTH_ARGS),--no-bundling)

# cdk.json runs app.py: it builds the arm64 Lambda layer without Docker and cdk-nag validates the synthesis.
deploy: venv
	npx --yes aws-cdk@2 deploy -c stage=$(or $(STAGE),dev) --require-approval broadening $(CDK_ARGS)

clean:
	rm -rf $(VENV) cdk.out out .pytest_cache .mypy_cache .ruff_cache
