"""Platform behaviour: health, problem+json, production settings guard, logs without secrets."""

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from core.health import WORKER_HEARTBEAT_KEY
from core.redis import get_redis
from core.tasks import schema_probe
from tenants.services import tenant_sandbox_ensure
from testsupport.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_healthz(db):
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


def test_readyz_reports_each_dependency(db):
    from unittest import mock

    from rewards_portal.celery import app

    get_redis().delete(WORKER_HEARTBEAT_KEY)
    # no heartbeat and no worker answering a ping (as when every worker is down)
    with mock.patch.object(app.control, "ping", return_value=[]):
        response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert not body["checks"]["workers"]["ok"]


def test_unknown_api_path_is_problem_json(api_a):
    response = api_a.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_malformed_json_is_problem_json(api_a):
    response = api_a._client.post("/api/v1/tokens", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_openapi_schema_and_docs_are_served(db):
    schema = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = json.loads(schema.content)
    assert document["openapi"].startswith("3.")
    assert "/api/v1/balances" in document["paths"] and "/api/v1/tokens" in document["paths"]
    docs = Client().get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_required_settings(missing):
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "rewards_portal.settings.production",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgresql://u@db/rp",
        "REDIS_URL": "redis://redis:6379/0",
        "ALLOWED_HOSTS": "rewards.example",
        "ENCRYPTION_KEYS": "dGVzdC1vbmx5LWluc2VjdXJlLWtleS0zMi1ieXRlcyE=",
        "RP_VAR_DIR": "/nonexistent",
    }
    code = "import django; django.setup(); print('started')"
    ok = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    del env[missing]
    refused = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0
    assert missing in refused.stderr
    env[missing] = "x" if missing != "ALLOWED_HOSTS" else "h"
    env["DEBUG"] = "true"
    debug = subprocess.run([sys.executable, "-c", code], env={**env, missing: ok_value(missing)}, cwd=ROOT,
                           capture_output=True, text=True)  # fmt: skip
    assert debug.returncode != 0 and "DEBUG" in debug.stderr


def ok_value(name):
    return {
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgresql://u@db/rp",
        "REDIS_URL": "redis://redis:6379/0",
        "ALLOWED_HOSTS": "rewards.example",
        "ENCRYPTION_KEYS": "dGVzdC1vbmx5LWluc2VjdXJlLWtleS0zMi1ieXRlcyE=",
    }[name]


def test_request_logs_carry_context_and_no_secrets(api_a, tenant_a, capsys):
    from core.logging import JsonFormatter, RedactSecretsFilter

    records = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Capture()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecretsFilter())
    from core.logging import ContextFilter

    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        api_a.get("/api/v1/balances?secret=" + api_a.raw_key, HTTP_X_REQUEST_ID="req-12345678")
        logging.getLogger("test").info("leaked %s and Bearer %s", api_a.raw_key, "abc.def")
    finally:
        root.removeHandler(handler)
    joined = "\n".join(records)
    assert api_a.raw_key not in joined and "abc.def" not in joined
    request_line = next(json.loads(line) for line in records if json.loads(line)["msg"] == "request")
    assert request_line["request_id"] == "req-12345678"
    assert request_line["tenant"] == tenant_a.schema_name
    assert request_line["key_id"] == api_a.key.key_id
    assert request_line["status"] == 200 and request_line["route"] == "api/v1/balances"


@pytest.mark.worker
def test_task_sent_inside_a_tenant_runs_in_its_schema(committed_tenant, celery_worker_process):
    probes = {}
    for tenant in (committed_tenant, tenant_sandbox_ensure(tenant=committed_tenant)):
        probe_id = uuid.uuid4().hex
        with tenant_context(tenant):
            schema_probe.delay(probe_id)
        probes[probe_id] = tenant.schema_name
    probe_public = uuid.uuid4().hex
    schema_probe.delay(probe_public)
    probes[probe_public] = "public"
    redis = get_redis()
    for probe_id, schema in probes.items():
        seen = wait_for(lambda pid=probe_id: redis.get(f"rp:probe:{pid}"))
        assert seen.decode() == schema


@pytest.mark.worker
def test_a_task_for_a_deleted_tenant_is_dropped_not_run_on_the_public_schema(committed_tenant, celery_worker_process):
    gone, after = uuid.uuid4().hex, uuid.uuid4().hex
    schema_probe.apply_async(args=[gone], headers={"_schema_name": "deleted_tenant_schema"})
    with tenant_context(committed_tenant):
        schema_probe.delay(after)  # queued behind it: once this ran, the first one was taken
    redis = get_redis()
    assert wait_for(lambda: redis.get(f"rp:probe:{after}")).decode() == committed_tenant.schema_name
    assert redis.get(f"rp:probe:{gone}") is None  # it did not run, on the public schema or anywhere
    expected = "task core.tasks.schema_probe dropped: its tenant (schema deleted_tenant_schema) no longer exists"
    wait_for(lambda: expected in celery_worker_process.log_text())


def test_a_task_whose_schema_cannot_be_entered_fails_and_is_not_dropped(tenant_a, monkeypatch):
    """Only a deleted tenant's task is dropped: a lookup that fails (database unreachable) fails the task, so
    its retry policy or the sweepers bring it back."""
    from django.db import OperationalError

    from rewards_portal.celery import Task

    def unreachable(cls, schema_name):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Task, "get_tenant_for_schema", classmethod(unreachable))
    probe_id = uuid.uuid4().hex
    result = schema_probe.apply(args=[probe_id], headers={"_schema_name": tenant_a.schema_name})
    assert result.failed() and f"could not enter schema {tenant_a.schema_name}" in str(result.result)
    assert get_redis().get(f"rp:probe:{probe_id}") is None  # not run on the public schema either


@pytest.mark.worker
def test_readyz_is_ready_with_a_worker(committed_tenant, celery_worker_process):
    body = Client().get("/readyz").json()
    assert body["status"] == "ready", body
    assert body["checks"]["workers"]["ok"]


def test_celery_publishes_into_the_redis_database_redis_url_names(settings):
    """Each test and bench run claims its own Redis database; with the embedded Redis (a unix socket) kombu
    ignored `?db=` and every run published into database 0, where the `make dev` worker took its tasks."""
    import redis
    from kombu import Exchange, Queue

    from rewards_portal.celery import app
    from rewards_portal.settings.base import redis_url_with_db

    here = redis.Redis.from_url(settings.REDIS_URL)
    database = here.connection_pool.connection_kwargs.get("db", 0)
    assert database != 0, "make test runs on a claimed database (1-14)"
    name = f"rp-broker-db-{uuid.uuid4().hex}"
    queue = Queue(name, Exchange(name), routing_key=name)
    key = app.conf.broker_transport_options.get("global_keyprefix", "") + name  # test runs prefix their keys
    try:
        with app.connection_for_write() as connection:
            producer = connection.Producer()
            producer.publish({"hello": "there"}, exchange=queue.exchange, routing_key=name, declare=[queue])
        assert here.llen(key) == 1
        assert redis.Redis.from_url(redis_url_with_db(settings.REDIS_URL, 0)).llen(key) == 0
    finally:
        here.delete(key, *here.keys(f"*_kombu.binding.{name}"))


def test_a_unix_socket_broker_url_keeps_its_password_and_database():
    """kombu reads a socket URL's database from virtual_host and its password from the netloc (as redis-py)."""
    from rewards_portal.settings.base import celery_broker_url

    assert (
        celery_broker_url("unix://:s3cret@/run/redis.sock?db=3")
        == "redis+socket://:s3cret@/run/redis.sock?virtual_host=3"
    )
    assert celery_broker_url("unix:///run/redis.sock") == "redis+socket:///run/redis.sock"
    assert celery_broker_url("redis://:pw@cache:6379/2") == "redis://:pw@cache:6379/2"
