"""A web process does its first request's one-time work when it loads the application, a Celery worker its first
task's when it starts (rewards_portal.warmup)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import rewards_portal.wsgi
from django.urls import resolve, reverse
from django.utils import translation
loaded = set(sys.modules)
for path in ("/api/v1/orders", "/api/v1/products", "/r/abc", "/p/", "/console/", "/admin/", "/"):
    try:
        resolve(path)
    except Exception:
        pass
for language in ("en", "ms"):
    with translation.override(language):
        reverse("healthz")
print(sorted(set(sys.modules) - loaded))
"""


def test_a_worker_loads_every_view_before_its_first_request_without_the_database_or_redis():
    """The first request a worker served imported the URLconf and all the views under Python's import lock
    (~400 ms of CPU; under load six requests of one worker took 1.2–1.4 s). Loading the WSGI application now does
    it: resolving and reversing the application's URLs afterwards imports nothing. It needs neither PostgreSQL nor
    Redis (both unreachable here): a worker boots while they restart."""
    unreachable = "127.0.0.1:9"  # the discard port: nothing listens there
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "rewards_portal.settings.test"),
        DATABASE_URL=f"postgresql://nobody@{unreachable}/nothing",
        REDIS_URL=f"redis://{unreachable}/0",
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
    assert "web process warmed up" in result.stderr + result.stdout  # logged, with its routes and CPU


# --- Celery workers ----------------------------------------------------------------------------------------

WORKER_PROBE = """
import json, socket, sys, uuid
from unittest import mock

from celery.concurrency.prefork import process_initializer
from django.template.base import Template

from rewards_portal.celery import app

refused = []

def refuse(what):
    def connect(*args, **kwargs):
        refused.append(what)
        raise OSError(f"{what} is unreachable while the worker starts")
    return connect

# `celery worker` before it forks: Django set up, the task modules imported, `worker_init` sent (the warm-up),
# the banner's startup information. PostgreSQL, Redis and anything else over a socket refuse meanwhile.
no_database = mock.patch("psycopg.connect", refuse("PostgreSQL"))
no_socket = mock.patch.object(socket.socket, "connect", refuse("a socket"))  # Redis, the broker, SMTP, HTTP
with no_database, no_socket:
    worker = app.Worker(hostname="probe@test", pool_cls="prefork", concurrency=1, quiet=True,
                        without_mingle=True, without_gossip=True, without_heartbeat=True)
    worker.startup_info()
process_initializer(app, "probe@test")  # what a forked child does before its first task

compiled = []
original = Template.__init__
def counting(self, *args, **kwargs):
    compiled.append(str(args[2] if len(args) > 2 else kwargs.get("name")))
    original(self, *args, **kwargs)
Template.__init__ = counting

plan = json.loads(sys.argv[1])
report = {"refused": refused, "tasks": []}
for name, args in plan["tasks"]:  # as the pool runs a task: its tracer, the schema in the headers
    loaded, compiled[:] = set(sys.modules), []
    request = {"id": uuid.uuid4().hex, "hostname": "probe@test", "_schema_name": plan["schema"],
               "headers": {"_schema_name": plan["schema"]}}
    traced = app.tasks[name].__trace__(request["id"], args, {}, request)
    report["tasks"].append({"task": name, "result": traced[0], "failed": None if traced[1] is None else str(traced[1]),
                            "imported": sorted(set(sys.modules) - loaded), "compiled": list(compiled)})
print(json.dumps(report, default=str))
"""


@pytest.mark.worker
def test_a_worker_child_s_first_delivery_webhook_and_bulk_chunk_import_and_compile_nothing(
    committed_tenant, smtp_server
):
    """A worker child's first reward delivery imported ~100 modules (the supplier adapters, httpx and rich) and
    compiled the email templates: ~75–110 ms of CPU more than the next one (bench/worker_first_task.py), in every
    prefork child after every deploy. The worker now does that when it starts, before it forks, with PostgreSQL and
    Redis unreachable: afterwards a delivery in English and Malay, a webhook drain and a bulk chunk, run as a
    forked child runs them, import nothing and compile no template, and still do their work."""
    from unittest import mock

    from django.db import connection
    from django_tenants.utils import tenant_context

    from batches.lifecycle import batch_confirm
    from batches.models import Batch
    from batches.upload import batch_upload
    from funds.services import funds_deposit
    from orders.create import order_create
    from orders.idempotency import request_hash
    from orders.models import Reward
    from orders.planning import RewardInput
    from orders.selectors import order_get, order_render
    from rewards_portal.celery import App
    from testsupport.batches import csv_bytes, digital_rows
    from testsupport.catalog import make_shop
    from testsupport.servers import Receiver
    from testsupport.workers import subprocess_env
    from webhooks.endpoints import webhook_endpoint_create

    shop = make_shop()
    receiver = Receiver()
    try:
        # Nothing is published: the session's worker (if another test started it) must not deliver these first.
        with mock.patch.object(App, "send_task"), tenant_context(committed_tenant):
            funds_deposit(currency="USD", amount="1000.00")
            webhook_endpoint_create(url=receiver.url("/hook"), events=["order.created"])
            rewards = [
                RewardInput(product_id=str(shop.coffee_usd.id), amount=Decimal("10.00"), currency="USD",
                            delivery_method="email", recipient={"name": "Siti", "email": f"{code}@warm.example",
                                                                "locale": code})
                for code in ("en", "ms")
            ]  # fmt: skip
            order_create(
                order_type="digital", rewards=rewards, idempotency_key=None, body_hash=request_hash({"warm": 1}),
                render=lambda order: order_render(order_get(order_id=order.id)),
            )  # fmt: skip
            rows = digital_rows(shop.coffee_usd, 3, domain="bulk.warm.example", deliver_at="2099-01-01T09:00:00Z")
            data = csv_bytes(rows)
            batch = batch_upload(file=io.BytesIO(data), file_name="warm.csv", size=len(data))
            batch_confirm(batch_id=batch.id)
        connection.set_schema_to_public()
        plan = {
            "schema": committed_tenant.schema_name,
            "tasks": [
                ("fulfillment.tasks.fulfil_drain_task", []),
                ("webhooks.tasks.webhook_deliveries_drain", []),
                ("batches.tasks.batch_process_task", [str(batch.id)]),
            ],
        }
        env = subprocess_env(TEST_SMTP_PORT=str(smtp_server.port))
        result = subprocess.run(
            [sys.executable, "-c", WORKER_PROBE, json.dumps(plan)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        delivery, webhook, bulk = report["tasks"]
        for task in report["tasks"]:
            assert task["failed"] is None, task
            assert (task["task"], task["imported"], task["compiled"]) == (task["task"], [], [])
        assert report["refused"] == []  # the warm-up tried neither PostgreSQL nor Redis
        assert "worker process warmed up" in result.stderr
        assert (delivery["result"], webhook["result"], bulk["result"]) == (2, 1, "done")
        with tenant_context(committed_tenant):
            delivered = Reward.objects.filter(recipient_email__endswith="@warm.example", status="delivered")
            assert delivered.count() == 2
            assert Batch.objects.get(pk=batch.id).status == "completed"
        connection.set_schema_to_public()
        assert len(receiver.to("/hook")) == 1
        texts = {m["to"][0]: text for m, text in zip(smtp_server.messages, smtp_server.texts(), strict=True)}
        assert "menghantar" in texts["ms@warm.example"]  # in Malay
        assert "sent you a gift" in texts["en@warm.example"]
    finally:
        receiver.stop()


def test_celery_worker_warms_up_before_it_reaches_the_database_or_the_broker():
    """`celery worker` as operators start it (prefork) warms up in its main process, before the pool forks and
    before it connects anywhere: with PostgreSQL and Redis unreachable it logs the warm-up, then waits for the
    broker."""
    unreachable = "127.0.0.1:9"
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "rewards_portal.settings.test"),
        DATABASE_URL=f"postgresql://nobody@{unreachable}/nothing",
        REDIS_URL=f"redis://{unreachable}/0",
        PYTHONUNBUFFERED="1",
    )
    env.pop("TEST_REDIS_URL", None)  # the test settings would take the test run's Redis from it
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rewards_portal", "worker", "-P", "prefork", "-c", "1", "-l", "info",
         "-n", f"warm{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("Cannot connect to redis" in line for line in lines):
            line = worker.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    output = "".join(lines)
    warmed = [json.loads(line) for line in lines if '"worker process warmed up"' in line]
    assert len(warmed) == 1, output[-3000:]
    assert warmed[0]["languages"] == ["en", "ms"] and warmed[0]["modules"] > 0 and warmed[0]["cpu_ms"] >= 0
    assert "Cannot connect to redis" in output  # it got as far as the broker, after the warm-up
