# Two commands: `make run` serves the API and pages locally; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt package-lock.json | cksum | cut -d' ' -f1)

.PHONY: run test test-moto test-ddblocal lint bench package deploy destroy clean browser-deps openapi

$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(PY) -m devtools.devserver

test: $(STAMP) browser-deps lint test-moto test-ddblocal

# Debian's Chromium for the browser tests (tests/test_browser.py drives it with Playwright); only if missing.
browser-deps:
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)

# ruff (style, and C901: no function above the complexity set in pyproject.toml), then mypy --strict on every module.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Three worker processes (pytest-xdist) on two cores: the tests wait on servers, browsers and DynamoDB Local for part
# of their time, and a third worker fills it. A worker that finishes early takes queued tests from the others.
# Each ddblocal worker starts its own DynamoDB Local.
PYTEST_WORKERS := -n 3 --dist worksteal

test-moto: $(STAMP)
	$(PY) -m pytest --backend=moto $(PYTEST_WORKERS)

test-ddblocal: $(STAMP)
	$(PY) -m pytest --backend=ddblocal $(PYTEST_WORKERS)

# The committed OpenAPI document, regenerated from the routes and models (tests/test_contract.py checks it).
openapi: $(STAMP)
	$(PY) -m devtools.openapi > openapi.json

# The benchmarks, printed; `$(PY) -m bench --write` also rewrites the figures in docs/benchmarks.md.
bench: $(STAMP)
	$(PY) -m bench

# A stage of .chalice/config.json: `make package STAGE=dev`, `make deploy STAGE=dev`, `make destroy STAGE=dev`.
# DRY_RUN=1 prints every command deploy or destroy would run, and runs none (deploy/commands.py).
STAGE ?= prod

package: $(STAMP)
	$(PY) -m deploy package $(STAGE)

deploy: $(STAMP)
	$(PY) -m deploy deploy $(STAGE)

destroy: $(STAMP)
	$(PY) -m deploy destroy $(STAGE)

clean:
	rm -rf $(VENV) node_modules .data out
