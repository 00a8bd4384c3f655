# Two commands: `make up` runs the whole platform, `make test` runs the whole suite.
# Both bring up real Postgres and Kafka first (`connectin services up`: yours if
# DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS answer, else Docker, else local installs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONNECTIN := $(BIN)/connectin
SERVICES_ENV = eval "$$($(CONNECTIN) services env)"

.PHONY: install browser services up test test-unit lint typecheck bench down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Debian's Chromium for the operator page's browser test (Playwright drives it; it never
# downloads a browser of its own).
browser:
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

services: install
	$(CONNECTIN) services up

# API worker processes for `make up`: one per core (Postgres, Kafka, the relay and the
# consumers share them too, so more would only queue).
API_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

# Without CONNECTIN_ENV every process runs as production and refuses the published
# default secrets; these targets say which environment they chose.
up: services
	@echo "make up: CONNECTIN_ENV=development (default secrets allowed, login cookie without Secure, random OPS_TOKEN), $(API_WORKERS) API workers"
	$(SERVICES_ENV) && CONNECTIN_ENV=development $(CONNECTIN) up --api-workers $(API_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy api relay consumers core cli devenv bench tests

# tests/unit, then tests/integration and tests/crash (pyproject's testpaths order).
test: lint typecheck browser services
	@echo "make test: CONNECTIN_ENV=test (default secrets allowed; tests set their own)"
	$(SERVICES_ENV) && CONNECTIN_ENV=test $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Seconds, and no services: neither started nor needed (tests/unit/conftest.py fails a
# test that asks for one or connects anywhere).
test-unit: install
	@echo "make test-unit: CONNECTIN_ENV=test, tests/unit only, no services"
	CONNECTIN_ENV=test $(BIN)/pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)

bench: services
	@echo "make bench: CONNECTIN_ENV=test (benchmarks start processes on the default secrets)"
	$(SERVICES_ENV) && CONNECTIN_ENV=test $(BIN)/python -m bench $(or $(BENCH_ARGS),all)

down: install
	$(CONNECTIN) services down

clean: down
	rm -rf $(VENV) .cache
