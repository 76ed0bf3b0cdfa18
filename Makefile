# Alimi — run `make help` for the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml deploy/devstack/pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
ROWS ?= 1000000
N ?= 100000
SEGMENTERS ?= 1
DELIVERY ?= 1

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml deploy/devstack/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e . -e deploy/devstack
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install the locked dependencies and Alimi itself

.PHONY: rabbitmq
rabbitmq: ## make sure the local RabbitMQ answers (start it, or install it if missing)
	@bash .ci/ensure-rabbitmq

.PHONY: cluster
cluster: ## start a three-node RabbitMQ cluster here (alimi-c1..c3, ports 5681-5683, data in .cluster/)
	@bash .ci/rabbitmq-cluster start

.PHONY: cluster-stop
cluster-stop: ## stop the local RabbitMQ cluster and remove its data
	@bash .ci/rabbitmq-cluster stop

.PHONY: prometheus
prometheus: ## make sure promtool and prometheus are installed (Debian's package if missing)
	@bash .ci/ensure-prometheus

.PHONY: chromium
chromium: ## make sure headless chromium and a Hangul font are installed (Debian's packages if missing)
	@bash .ci/ensure-chromium

.PHONY: run
run: install rabbitmq ## start the whole system locally (SecantusDB unless MONGO_URL is set)
	$(PY) -m alimi_devstack

.PHONY: test
test: install rabbitmq prometheus chromium ## run the whole test suite (unit, integration, end-to-end, chaos)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: chaos
chaos: install rabbitmq ## only the chaos tests (part of make test): kill -9, broker and MongoDB faults, provider faults
	$(PY) -m pytest -m "chaos and not cluster" tests/chaos $(PYTEST_ARGS)

.PHONY: chaos-cluster
chaos-cluster: install ## the cluster chaos tests (not in make test): start the cluster, run them, stop it
	@bash .ci/rabbitmq-cluster start
	$(PY) -m pytest -m cluster tests/chaos/test_cluster.py $(PYTEST_ARGS); \
	  status=$$?; bash .ci/rabbitmq-cluster stop; exit $$status

.PHONY: bench-import
bench-import: install rabbitmq ## import a generated CSV (ROWS=1000000) into a real intake: rows/s, peak RSS
	$(PY) bench/import_subjects.py --rows $(ROWS)

.PHONY: bench
bench: install rabbitmq ## one notice to N people (N=100000; SEGMENTERS=1 DELIVERY=1 processes) against this machine's ceilings
	$(PY) bench/pipeline.py --n $(N) --segmenters $(SEGMENTERS) --delivery $(DELIVERY)

.PHONY: lint
lint: install ## ruff and mypy over shared/, services/ and cli/
	$(VENV)/bin/ruff check shared services cli tests bench deploy
	$(VENV)/bin/ruff format --check shared services cli tests bench deploy
	@# no incremental cache: a stale one mixes up the editable install and the sources
	$(VENV)/bin/mypy --cache-dir=/dev/null shared/alimi services cli deploy/devstack/alimi_devstack

.PHONY: lock
lock: ## re-resolve requirements.lock from pyproject.toml
	@test -x $(VENV)/bin/uv || ($(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet uv)
	$(VENV)/bin/uv pip compile pyproject.toml --extra cli --extra dev --python-version 3.11 \
	  --prerelease if-necessary-or-explicit --generate-hashes -o requirements.lock

.PHONY: clean
clean: ## remove the virtual environment and local data
	rm -rf $(VENV) .alimi-data .pytest_cache
	@bash .ci/rabbitmq-cluster stop
