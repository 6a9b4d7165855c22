"""/metrics: who may read it, what a scrape shows after real traffic, and a real worker's task metrics."""

from __future__ import annotations

import json
import pathlib
import re
import uuid
from decimal import Decimal

import pytest
import yaml
from django.test import Client
from django_tenants.utils import tenant_context

from core import context
from core import metrics as counters
from core.tasks import schema_probe
from funds.models import AccountKind, LedgerAccount
from observability import collectors
from observability.snapshot import snapshot_refresh
from testsupport.orders import digital_order
from testsupport.waiting import wait_for
from testsupport.workers import WorkerPool

TOKEN = "metrics-test-token-0123456789"


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a Prometheus text exposition (labels in any order), or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def metrics_settings(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    return settings


def test_metrics_answer_only_the_token_or_the_allowed_network(db, metrics_settings):
    client = Client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 404
    # A server listening on [::] sees IPv4 clients as IPv4-mapped IPv6 addresses.
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.2.0.1").status_code == 404
    metrics_settings.METRICS_TOKEN = ""
    metrics_settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404  # off until configured


def test_a_refusal_looks_like_any_unknown_path_and_shows_no_metric(db, api_a, metrics_settings):
    """Attacker review: a tenant's API key, a forged X-Forwarded-For, a near-miss token and other methods are all a
    plain 404 with no metric in the body, the same answer as a path that does not exist."""
    client = Client()
    unknown = client.get("/no-such-page")
    refusals = {
        "tenant API key": client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {api_a.raw_key}"),
        "tenant API key, API client": api_a.get("/metrics"),
        "token as a prefix": client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}"),
        "token plus a byte": client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x"),
        "token without Bearer": client.get("/metrics", HTTP_AUTHORIZATION=TOKEN),
        "token as Basic": client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}"),
        "token in the query": client.get("/metrics", {"token": TOKEN}),
        "forged X-Forwarded-For": client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3", REMOTE_ADDR="192.0.2.7"),
        "POST": client.post("/metrics"),
        "DELETE": client.delete("/metrics"),
    }
    for name, response in refusals.items():
        body = response.content.decode(errors="replace")
        assert response.status_code == unknown.status_code == 404, name
        assert "rp_" not in body and "# HELP" not in body and "python_gc" not in body, name
    # Behind one trusted proxy the client is the address the proxy appended, not one the client wrote first.
    metrics_settings.TRUSTED_PROXY_COUNT = 1
    spoofed = client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3, 192.0.2.7", REMOTE_ADDR="10.9.9.9")
    assert spoofed.status_code == 404
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="192.0.2.7, 10.1.2.3").status_code == 200
    # Once allowed, only GET and HEAD read it.
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_a_scrape_shows_requests_by_route_open_rewards_ledger_and_low_balances(
    api_a, funded_a, tenant_b, shop, metrics_settings
):
    created = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00"))
    assert created.status_code == 201
    with tenant_context(funded_a):
        LedgerAccount.objects.filter(kind=AccountKind.CASH, currency="USD").update(
            low_balance_threshold=Decimal("5000.00")
        )
    snapshot_refresh()  # what beat does every METRICS_SNAPSHOT_SECONDS

    body = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()

    assert _sample(body, "rp_http_requests_total", method="POST", route="api/v1/orders", status="201") >= 1
    assert _sample(body, "rp_http_request_duration_seconds_count", method="POST", route="api/v1/orders") >= 1
    assert _sample(body, "rp_rewards_open", mode="live", status="pending") >= 1
    assert _sample(body, "rp_reward_delivery_lag_seconds", mode="live") >= 0
    assert _sample(body, "rp_ledger_balance", mode="live", currency="USD", account="holds") >= 25
    assert _sample(body, "rp_tenant_balance_low", tenant="alpha", currency="USD") == 1
    assert _sample(body, "rp_tenant_balance_low", tenant="beta") is None  # no threshold set
    assert _sample(body, "rp_tenants_balance_low", currency="USD") >= 1
    assert _sample(body, "rp_webhook_backlog", mode="live") is not None
    assert _sample(body, "rp_broker_up") == 1
    assert _sample(body, "rp_celery_queue_depth", queue="delivery") is not None
    assert _sample(body, "rp_metrics_snapshot_age_seconds") < 60
    # A path with a token in it is never a label: only route patterns are.
    assert "/r/" not in body and "ada@example.com" not in body


@pytest.mark.worker
def test_a_worker_exports_its_task_metrics_and_logs_the_request_id_that_queued_it(
    db, smtp_server, metrics_settings, tmp_path, monkeypatch
):
    """A worker of its own on a queue of its own (the session's workers never take its task), writing to a
    multiprocess directory that this process's /metrics reads, as gunicorn and workers on one host do."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    pool = WorkerPool(smtp_server.port)
    queue = f"metrics-probe-{uuid.uuid4().hex[:8]}"
    try:
        pool.start(1, concurrency=1, queues=queue, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
        request_id = f"req-{uuid.uuid4().hex}"
        context.bind(request_id=request_id)  # as RequestLogMiddleware does for a request
        try:
            sent = schema_probe.apply_async(args=[uuid.uuid4().hex], queue=queue)
        finally:
            context.clear()

        def task_line():
            for line in pool.log_text().splitlines():
                if line.startswith("{") and '"msg": "task"' in line:
                    record = json.loads(line)
                    if record.get("task_id") == sent.id:  # the log file is shared with the session's workers
                        return record
            return None

        record = wait_for(task_line, timeout=30, message="the worker's task line")
        assert record["request_id"] == request_id and record["state"] == "SUCCESS"
        body = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
        assert _sample(body, "rp_celery_tasks_total", task="core.tasks.schema_probe", state="SUCCESS") == 1
        assert _sample(body, "rp_celery_task_runtime_seconds_count", task="core.tasks.schema_probe") == 1
        assert _sample(body, "rp_celery_task_wait_seconds_count", queue="other") == 1
    finally:
        pool.close()


def test_the_example_alerts_and_dashboard_name_only_metrics_this_code_exports():
    """docs/metrics: a rule or panel on a renamed metric would silently never fire or draw."""
    root = pathlib.Path(__file__).resolve().parents[2]
    exported = set(re.findall(r'"(rp_[a-z_]+)"', pathlib.Path(counters.__file__).read_text()))
    exported |= set(re.findall(r'"(rp_[a-z_]+)"', pathlib.Path(collectors.__file__).read_text()))
    rules = yaml.safe_load((root / "docs/metrics/alerts.yml").read_text())["groups"][0]["rules"]
    dashboard = (root / "docs/metrics/grafana-dashboard.json").read_text()
    json.loads(dashboard)
    used = {name for rule in rules for name in re.findall(r"rp_[a-z_]+", rule["expr"])}
    used |= set(re.findall(r"rp_[a-z_]+", dashboard))
    assert used, "no metric found in the examples"
    unknown = {name for name in used if re.sub(r"_(total|bucket|count|sum)$", "", name) not in exported}
    assert unknown == set()
    assert any("absent(rp_metrics_snapshot_age_seconds)" in rule["expr"] for rule in rules)


def test_a_malformed_allowed_network_is_refused_at_start_not_at_each_scrape():
    from django.core.exceptions import ImproperlyConfigured

    from rewards_portal.settings.base import networks_checked

    assert networks_checked("METRICS_ALLOWED_NETWORKS", ["10.0.0.0/8", "::1/128"]) == ["10.0.0.0/8", "::1/128"]
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "intranet"):
        with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_NETWORKS"):
            networks_checked("METRICS_ALLOWED_NETWORKS", [bad])
