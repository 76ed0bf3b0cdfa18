# Alimi — run `make help` for the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install the locked dependencies and Alimi itself

.PHONY: rabbitmq
rabbitmq: ## make sure the local RabbitMQ answers (start it, or install it if missing)
	@bash .ci/ensure-rabbitmq

.PHONY: prometheus
prometheus: ## make sure promtool and prometheus are installed (Debian's package if missing)
	@bash .ci/ensure-prometheus

.PHONY: run
run: install rabbitmq ## start the whole system locally (SecantusDB unless MONGO_URL is set)
	$(PY) -m alimi.devstack

.PHONY: test
test: install rabbitmq prometheus ## run the whole test suite (unit, integration, end-to-end)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff and mypy over shared/ and services/
	$(VENV)/bin/ruff check shared services tests
	$(VENV)/bin/ruff format --check shared services tests
	@# no incremental cache: a stale one mixes up the editable install and the sources
	$(VENV)/bin/mypy --cache-dir=/dev/null shared/alimi services

.PHONY: lock
lock: ## re-resolve requirements.lock from pyproject.toml
	@test -x $(VENV)/bin/uv || ($(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet uv)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --prerelease if-necessary-or-explicit --generate-hashes -o requirements.lock

.PHONY: clean
clean: ## remove the virtual environment and local data
	rm -rf $(VENV) .alimi-data .pytest_cache
