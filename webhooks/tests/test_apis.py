"""The webhooks API: endpoints (secret shown once), rotation, test-send, events, deliveries, redelivery,
problem+json refusals, tenant and sandbox isolation, and query budgets on every list."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSecret
from webhooks.services import event_emit

from .helpers import run_pending, verify

pytestmark = pytest.mark.django_db
BASE = "/api/v1/webhook-endpoints"


def create_endpoint(api, receiver, path="/hook", **fields):
    response = api.post(BASE, {"url": receiver.url(path), **fields})
    assert response.status_code == 201, response.content
    return response.json()


def emit_in(tenant, type_="order.created", **data):
    with tenant_context(tenant), transaction.atomic():
        return event_emit(type=type_, data=data or {"order_id": "ord_1"})


def test_create_shows_the_secret_once(api_a, receiver):
    body = create_endpoint(api_a, receiver, events=["order.created", "reward.delivered"], description="CRM")
    assert body["id"].startswith("ep_") and body["secret"].startswith("whsec_")
    assert body["events"] == ["order.created", "reward.delivered"]
    assert body["enabled"] is True and body["description"] == "CRM" and body["failing_since"] is None

    shown = api_a.get(f"{BASE}/{body['id']}").json()
    assert "secret" not in shown and body["secret"] not in str(shown)
    listed = api_a.get(BASE).json()
    assert [e["id"] for e in listed["results"]] == [body["id"]]
    assert body["secret"] not in str(listed)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://user:pw@example.com/x"}, "url"),
        ({"url": "https://example.com/x", "events": ["order.exploded"]}, "events"),
        ({"events": ["order.created"]}, "url"),
    ],
)
def test_invalid_endpoints_are_refused_with_problem_json(api_a, payload, field):
    response = api_a.post(BASE, payload)
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error" and field in body["errors"]
    assert api_a.get(BASE).json()["results"] == []


def test_private_urls_are_refused_in_production_mode(api_a, settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False
    for url in ("http://example.com/hook", "https://127.0.0.1/hook", "https://10.1.2.3/", "https://localhost/x"):
        response = api_a.post(BASE, {"url": url})
        assert response.status_code == 422, url
    assert api_a.post(BASE, {"url": "https://hooks.example.com/rewards"}).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/hook",
        "https://0x7f000001/hook",
        "https://0177.0.0.1/hook",
        "https://127.1/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://93.184.216.34/hook",
        "https://intranet/hook",
    ],
)
def test_numeric_hosts_and_single_label_names_are_refused_at_registration(api_a, settings, url):
    settings.OUTBOUND_ALLOW_PRIVATE = False
    response = api_a.post(BASE, {"url": url})
    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error" and list(body["errors"]) == ["url"]
    endpoint = api_a.post(BASE, {"url": "https://hooks.example.com/ok"}).json()
    assert api_a.patch(f"{BASE}/{endpoint['id']}", {"url": url}).status_code == 422  # nor by an update
    assert [e["url"] for e in api_a.get(BASE).json()["results"]] == ["https://hooks.example.com/ok"]


def test_the_url_is_stored_normalised(api_a, settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False
    response = api_a.post(BASE, {"url": "https://Hooks.Example.COM./rewards"})
    assert response.status_code == 201 and response.json()["url"] == "https://hooks.example.com/rewards"


def test_update_disable_and_delete(api_a, tenant_a, receiver):
    endpoint = create_endpoint(api_a, receiver)
    emit_in(tenant_a)
    response = api_a.patch(f"{BASE}/{endpoint['id']}", {"enabled": False, "events": ["balance.low"]})
    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False and response.json()["events"] == ["balance.low"]
    with tenant_context(tenant_a):
        assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED  # pending ones stop

    assert api_a.post(f"{BASE}/{endpoint['id']}/test").status_code == 409
    response = api_a.patch(f"{BASE}/{endpoint['id']}", {"enabled": True})
    assert response.json()["enabled"] is True and response.json()["disabled_reason"] == ""

    assert api_a.delete(f"{BASE}/{endpoint['id']}").status_code == 204
    assert api_a.get(f"{BASE}/{endpoint['id']}").status_code == 404


def test_rotate_secret_and_test_send(api_a, tenant_a, receiver):
    endpoint = create_endpoint(api_a, receiver)
    response = api_a.post(f"{BASE}/{endpoint['id']}/rotate-secret", {"previous_secret_expires_in": 3600})
    assert response.status_code == 200, response.content
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]

    response = api_a.post(f"{BASE}/{endpoint['id']}/test")
    assert response.status_code == 202, response.content
    delivery = response.json()
    assert delivery["event_type"] == "webhook.test" and delivery["status"] == "pending"
    assert delivery["id"].startswith("msg_")
    with tenant_context(tenant_a):
        run_pending()
    (received,) = receiver.requests
    assert received.headers["webhook-id"] == delivery["id"]
    assert verify(endpoint["secret"], received)["type"] == "webhook.test"
    assert verify(rotated["secret"], received)["data"]["endpoint_id"] == endpoint["id"]

    assert api_a.post(f"{BASE}/{endpoint['id']}/rotate-secret", {"previous_secret_expires_in": -1}).status_code == 422
    with tenant_context(tenant_a):
        assert WebhookSecret.objects.count() == 2


def test_events_and_deliveries(api_a, tenant_a, receiver):
    endpoint = create_endpoint(api_a, receiver)
    receiver.script("/hook", [(500, {})])
    first = emit_in(tenant_a, "order.created", order_id="ord_1")
    emit_in(tenant_a, "reward.delivered", reward_id="rwd_1")
    with tenant_context(tenant_a):
        run_pending()

    events = api_a.get("/api/v1/events").json()["results"]
    assert [e["type"] for e in events] == ["reward.delivered", "order.created"]
    assert api_a.get("/api/v1/events", {"type": "order.created"}).json()["results"] == [
        {"id": first.id, "type": "order.created", "created_at": events[1]["created_at"], "data": {"order_id": "ord_1"}}
    ]
    assert api_a.get(f"/api/v1/events/{first.id}").json()["id"] == first.id

    (delivery,) = api_a.get(f"/api/v1/events/{first.id}/deliveries").json()["results"]
    assert delivery["status"] == "pending" and delivery["last_status_code"] == 500
    assert delivery["next_attempt_at"] is not None
    (attempt,) = delivery["attempts"]
    assert attempt["response_status"] == 500 and attempt["error"] == "HTTP 500" and attempt["succeeded"] is False
    assert attempt["request_headers"]["webhook-id"] == delivery["id"]

    listed = api_a.get(f"{BASE}/{endpoint['id']}/deliveries").json()["results"]
    assert len(listed) == 2
    succeeded = api_a.get(f"{BASE}/{endpoint['id']}/deliveries", {"status": "succeeded"}).json()["results"]
    assert [d["event_type"] for d in succeeded] == ["reward.delivered"]

    response = api_a.post(f"/api/v1/events/{first.id}/redeliver")
    assert response.status_code == 202
    (again,) = response.json()["results"]  # waiting for a retry: brought forward to now
    assert again["id"] == delivery["id"] and again["status"] == "pending"
    with tenant_context(tenant_a):
        assert WebhookDelivery.objects.get(pk=again["id"]).next_attempt_at <= timezone.now()
    response = api_a.post(f"/api/v1/events/{events[0]['id']}/redeliver")
    (again,) = response.json()["results"]
    assert again["status"] == "pending" and again["id"] == succeeded[0]["id"]  # the same webhook-id


def test_redeliver_failed_in_a_window(api_a, tenant_a, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0]
    receiver.script("/hook", [(500, {})] * 2)
    endpoint = create_endpoint(api_a, receiver)
    emit_in(tenant_a)
    emit_in(tenant_a)
    with tenant_context(tenant_a):
        run_pending()
        assert WebhookDelivery.objects.filter(status=DeliveryStatus.FAILED).count() == 2

    url = f"{BASE}/{endpoint['id']}/redeliver-failed"
    assert api_a.post(url).status_code == 422  # since is required
    assert api_a.post(f"{url}?since={_ago(hours=1)}&until={_ago(hours=2)}").status_code == 422
    assert api_a.post(f"{url}?since={_ago(hours=2)}&until={_ago(hours=1)}").json() == {"scheduled": 0}
    since = _ago(hours=1)
    response = api_a.post(f"{url}?since={since}")
    assert response.status_code == 202 and response.json() == {"scheduled": 2}
    with tenant_context(tenant_a):
        assert run_pending() == 2
        assert WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2


def _ago(**delta) -> str:
    return (timezone.now() - timedelta(**delta)).isoformat().replace("+", "%2B")


def test_secrets_shown_by_the_api_are_never_logged(api_a, receiver, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    endpoint = create_endpoint(api_a, receiver)
    rotated = api_a.post(f"{BASE}/{endpoint['id']}/rotate-secret").json()
    output = capsys.readouterr()
    assert caplog.records
    for secret in (endpoint["secret"], rotated["secret"]):
        for text in (caplog.text, output.out, output.err, str([vars(r) for r in caplog.records])):
            assert secret not in text and secret.removeprefix("whsec_") not in text


def test_scopes(tenant_a, make_api_client, receiver):
    reader = make_api_client(tenant_a, scopes=["read"])
    assert reader.get(BASE).status_code == 200
    assert reader.post(BASE, {"url": receiver.url()}).status_code == 403


def test_tenant_b_objects_are_404_for_tenant_a(api_a, api_b, tenant_b, receiver):
    theirs = create_endpoint(api_b, receiver)
    event = emit_in(tenant_b)
    for method, path in [
        ("get", f"{BASE}/{theirs['id']}"),
        ("patch", f"{BASE}/{theirs['id']}"),
        ("delete", f"{BASE}/{theirs['id']}"),
        ("post", f"{BASE}/{theirs['id']}/rotate-secret"),
        ("post", f"{BASE}/{theirs['id']}/test"),
        ("get", f"{BASE}/{theirs['id']}/deliveries"),
        ("post", f"{BASE}/{theirs['id']}/redeliver-failed?since=2020-01-01T00:00:00Z"),
        ("get", f"/api/v1/events/{event.id}"),
        ("get", f"/api/v1/events/{event.id}/deliveries"),
        ("post", f"/api/v1/events/{event.id}/redeliver"),
    ]:
        response = getattr(api_a, method)(path)
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["code"] == "not_found"
    assert api_a.get(BASE).json()["results"] == []
    assert api_a.get("/api/v1/events").json()["results"] == []
    assert api_b.get(f"{BASE}/{theirs['id']}").status_code == 200


def test_the_sandbox_twin_is_separate(api_a, tenant_a, make_api_client, receiver):
    sandbox_api = make_api_client(tenant_a.sandbox)
    live = create_endpoint(api_a, receiver, "/live")
    sandbox = create_endpoint(sandbox_api, receiver, "/sandbox")
    emit_in(tenant_a.sandbox, "balance.credited", currency="USD", amount="1.00", available="1.00")

    assert [e["id"] for e in sandbox_api.get(BASE).json()["results"]] == [sandbox["id"]]
    assert sandbox_api.get(f"{BASE}/{live['id']}").status_code == 404
    assert api_a.get(f"{BASE}/{sandbox['id']}").status_code == 404
    assert api_a.get("/api/v1/events").json()["results"] == []
    assert len(sandbox_api.get("/api/v1/events").json()["results"]) == 1
    with tenant_context(tenant_a.sandbox):
        run_pending()
    assert [r.path for r in receiver.requests] == ["/sandbox"]
    verify(sandbox["secret"], receiver.requests[0])


def test_list_endpoints_stay_within_a_query_budget(api_a, tenant_a, receiver, django_assert_max_num_queries):
    endpoints = [create_endpoint(api_a, receiver, f"/h{i}") for i in range(5)]
    for i in range(12):
        event = emit_in(tenant_a, order_id=f"ord_{i}")
    with tenant_context(tenant_a):
        run_pending()
        run_pending()  # the second round is a no-op; everything succeeded
    api_a.get(BASE)  # warm the credential cache (last_used_at etc.)
    # Whatever the number of rows: the credential, then the page (+ the parent row and the attempts
    # prefetch for deliveries); django-tenants adds a `SET search_path` before each tenant query.
    for path, budget in [
        (BASE, 4),
        ("/api/v1/events", 4),
        ("/api/v1/events?type=order.created", 4),
        (f"{BASE}/{endpoints[0]['id']}/deliveries", 8),
        (f"/api/v1/events/{event.id}/deliveries", 8),
    ]:
        with django_assert_max_num_queries(budget):
            response = api_a.get(path)
        assert response.status_code == 200, response.content
        assert response.json()["results"]


def test_cursor_pagination(api_a, tenant_a):
    for i in range(5):
        emit_in(tenant_a, order_id=f"ord_{i}")
    page = api_a.get("/api/v1/events", {"limit": 2}).json()
    seen = [e["data"]["order_id"] for e in page["results"]]
    while page["next"]:
        page = api_a.get(page["next"].split("testserver")[-1]).json()
        seen += [e["data"]["order_id"] for e in page["results"]]
    assert seen == [f"ord_{i}" for i in reversed(range(5))]
