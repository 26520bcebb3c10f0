# Loopgate: `make demo` shows the whole loop, `make test` runs every test. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The locks (README "Dependencies"): every package pinned with its hashes, made by uv from the
# pyproject files. requirements.lock is what the image installs, requirements-dev.lock what
# `make install` does (the runtime's pins, the dev extras and tools/). pip and the build backend
# are locked too: the project is installed from the venv's setuptools (--no-build-isolation).
RUNTIME_LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
INSTALLERS := 'pip>=25.3' 'setuptools>=78.1.1'
UV_COMPILE = $(BIN)/uv pip compile - --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)

$(STAMP): pyproject.toml tools/pyproject.toml $(DEV_LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . -e tools
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; echo "the venv does not satisfy pyproject.toml: make lock" >&2; exit 1; }
	touch $(STAMP)

install: $(STAMP) ## virtual environment with every Python dependency, and the Kafka jars
	scripts/kafka.sh fetch

lock: ## regenerate requirements.lock (the image's) and requirements-dev.lock from pyproject.toml, with hashes; UPGRADE=1 takes the newest allowed
	@test -x $(BIN)/uv || { echo "make lock needs uv from the dev lock: make install first" >&2; exit 1; }
	printf '%s\n' . $(INSTALLERS) | $(UV_COMPILE) --no-emit-package loopgate -o $(RUNTIME_LOCK)
	printf '%s\n' '-e .[dev]' '-e ./tools' $(INSTALLERS) | $(UV_COMPILE) --constraint $(RUNTIME_LOCK) \
		--no-emit-package loopgate --no-emit-package loopgate-tools -o $(DEV_LOCK)

audit: $(STAMP) ## pip-audit over both locks (PyPI's vulnerability service); a finding fails unless deploy/audit-ignore.toml lists it
	$(BIN)/python -m loopgate_tools.audit $(AUDIT_ARGS)

kafka-up: install ## start the local Kafka broker (127.0.0.1:9092)
	scripts/kafka.sh start

kafka-down: ## stop the local Kafka broker
	scripts/kafka.sh stop

test: install ## run every test (starts and stops its own broker and PostgreSQL)
	@command -v promtool >/dev/null && command -v amtool >/dev/null || { echo "make test needs Prometheus' promtool and amtool: apt-get install prometheus prometheus-alertmanager (.ci/run does)" >&2; exit 1; }
	scripts/install-compose.sh
	scripts/install-jaeger.sh >/dev/null  # the trace test's Jaeger: built once (~4 min cold), cached by version
	scripts/run-tests.sh $(PYTEST_ARGS)

chaos: install ## fault-injection suite at full size (20000 events a scenario, 30 s API outage, 20 s loss of one of three brokers, 25 hostile-input examples); prints its table
	LOOPGATE_CHAOS_EVENTS=20000 LOOPGATE_CHAOS_PUBLISH_SECONDS=20 LOOPGATE_CHAOS_API_OUTAGE_SECONDS=30 \
	LOOPGATE_CHAOS_BROKER_DOWN_SECONDS=20 LOOPGATE_HOSTILE_EXAMPLES=25 \
		scripts/run-tests.sh -m chaos tests/chaos tests/integration/test_detector_hostile.py $(PYTEST_ARGS)

bench: install ## benchmarks on a broker of their own; writes docs/benchmarks.{json,md}, prints the table
	scripts/bench.sh $(BENCH_ARGS)

demo: install ## start the broker and every service, drive a simulated stream, show the result
	scripts/demo.sh

down: ## stop everything `make demo` started
	scripts/demo.sh down

lint: $(STAMP) ## ruff (lint and format check) and mypy --strict over the product, the schemas and the tools
	$(BIN)/ruff check services schemas tools tests
	$(BIN)/ruff format --check services schemas tools tests
	$(BIN)/mypy

check: lint ## lint, types and the unit tests (under a minute)
	scripts/run-tests.sh -q tests/unit

schemas: install ## regenerate schemas/jsonschema from the models
	$(BIN)/loopgate schemas generate

.PHONY: help install lock audit kafka-up kafka-down test chaos bench demo down lint check schemas
