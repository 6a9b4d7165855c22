"""Tests: real PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are set), fast hashing."""

import json
import os

from rewards_portal import embedded

from .base import *  # noqa: F403
from .base import PORTAL_DOMAIN, configure_stores, env, redis_url_with_db

SECRET_KEY = "test-secret-key-not-for-production"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", f".{PORTAL_DOMAIN}"]
OUTBOUND_ALLOW_PRIVATE = True
# Console tests sign operators in with a password alone; the enrolment rule has its own tests (settings fixture).
OPERATOR_REQUIRE_TWO_FACTOR = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; real hashers in prod
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

_stores = embedded.environment()
# Tests use their own Redis database so a running `make dev` worker never consumes test tasks.
_redis = os.environ.get("TEST_REDIS_URL") or redis_url_with_db(_stores["REDIS_URL"], 15)
_store_settings = configure_stores(_stores["DATABASE_URL"], _redis)
globals().update(_store_settings)
REDIS_URL = _redis
DATABASES = _store_settings["DATABASES"]  # the same dict, named here (globals().update is invisible to mypy)
DATABASES["default"]["CONN_MAX_AGE"] = 0  # threaded test servers must not leak connections
# `make test` gives each concurrent run its own test database (see scripts/run_tests.py).
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DB_NAME", "test_rewards_portal")}
CELERY_BEAT_SCHEDULE_FILENAME = str(embedded.VAR_DIR / "celerybeat-schedule-test")
# A beat started by a test may get a short schedule of its own (JSON, as CELERY_BEAT_SCHEDULE).
if os.environ.get("TEST_BEAT_SCHEDULE"):
    CELERY_BEAT_SCHEDULE = json.loads(os.environ["TEST_BEAT_SCHEDULE"])
ENCRYPTION_KEYS = ["dGVzdC1vbmx5LWluc2VjdXJlLWtleS0zMi1ieXRlcyE="]
# A short webhook retry schedule, read from the environment so the test worker process gets the same one.
WEBHOOK_RETRY_SCHEDULE = env.list("WEBHOOK_RETRY_SCHEDULE", cast=float, default=[0, 0.3, 0.3, 0.3, 0.3, 0.3])
# A short `sending` claim so a delivery held by a killed worker is recovered within a test (production:
# past the task's hard time limit).
WEBHOOK_SENDING_LEASE_SECONDS = float(os.environ.get("WEBHOOK_SENDING_LEASE_SECONDS", "5"))
# In-memory SMS, unless a test runs workers against a fake HTTP provider (resilience/test_worker_kills.py).
SMS_BACKEND = os.environ.get("TEST_SMS_BACKEND", "fulfillment.sms.LocmemSmsBackend")
# Workers kill themselves at armed points (core/faults.py) when a resilience test starts them with this set.
FAULT_INJECTION = os.environ.get("TEST_FAULT_INJECTION") == "1"
FULFILMENT_RETRY_BASE_SECONDS = float(os.environ.get("FULFILMENT_RETRY_BASE_SECONDS", "0.2"))
FULFILMENT_RETRY_MAX_SECONDS = 2.0
# Short leases so the sweeper recovers rewards held by a killed worker within a test.
FULFILMENT_LEASE_SECONDS = int(os.environ.get("FULFILMENT_LEASE_SECONDS", "3"))
# A real SMTP server (aiosmtpd on loopback) when the test run provides one; otherwise in-memory mail.
if os.environ.get("TEST_SMTP_PORT"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = "127.0.0.1"
    EMAIL_PORT = int(os.environ["TEST_SMTP_PORT"])
# Tests run without collectstatic: WhiteNoise looks files up per request instead of warning at start.
WHITENOISE_AUTOREFRESH = True
# Celery keys carry the test database's name, so a test run never shares queues with a dev worker or
# another run that happens to use the same Redis logical database.
# (On RabbitMQ, `make test-scale` gives each run a virtual host of its own instead.)
if not _store_settings["CELERY_BROKER_URL"].startswith("amqp"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **_store_settings["CELERY_BROKER_TRANSPORT_OPTIONS"],
        "global_keyprefix": DATABASES["default"]["TEST"]["NAME"] + ":",
    }
ANYMAIL = {**ANYMAIL, "WEBHOOK_SECRET": "provider:webhook-secret"}  # noqa: F405
