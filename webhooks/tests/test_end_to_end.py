"""End to end: committed events, a real Celery worker (separate process) and a real HTTP receiver on 127.0.0.1.

The worker runs the test settings, whose short WEBHOOK_RETRY_SCHEDULE (0 s, then 0.3 s) makes retries quick.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from funds.services import funds_deposit
from tenants.services import tenant_sandbox_ensure
from testsupport.waiting import wait_for
from webhooks import publish
from webhooks.endpoints import webhook_endpoint_create
from webhooks.events import event_emit
from webhooks.models import DeliveryStatus, Event, WebhookAttempt, WebhookDelivery
from webhooks.sweeper import webhook_deliveries_sweep

from .helpers import verify

pytestmark = pytest.mark.worker


def statuses(tenant) -> list[str]:
    with tenant_context(tenant):
        return list(WebhookDelivery.objects.order_by("created_at").values_list("status", flat=True))


def test_events_are_delivered_signed_and_retried_with_the_same_webhook_id(
    committed_tenant, celery_worker_process, receiver
):
    receiver.script("/flaky", [(500, {}), (503, {}), (500, {})])
    with tenant_context(committed_tenant):
        _, secret = webhook_endpoint_create(url=receiver.url("/hook"))
        _, flaky_secret = webhook_endpoint_create(url=receiver.url("/flaky"), events=["order.created"])
        with transaction.atomic():
            order_event = event_emit(type="order.created", data={"order_id": "ord_e2e"})
            event_emit(type="reward.delivered", data={"reward_id": "rwd_e2e"})
        funds_deposit(currency="USD", amount="50.00")  # balance.credited, from the funds hook
        with pytest.raises(RuntimeError), transaction.atomic():
            event_emit(type="order.failed", data={"order_id": "ord_rolled_back"})
            raise RuntimeError("rollback")
        with pytest.raises(RuntimeError, match="atomic"):
            event_emit(type="order.failed", data={})  # autocommit: refused, nothing written

    wait_for(lambda: len(receiver.to("/hook")) >= 3)
    payloads = [verify(secret, r) for r in receiver.to("/hook")]
    assert sorted(p["type"] for p in payloads) == ["balance.credited", "order.created", "reward.delivered"]
    credited = next(p for p in payloads if p["type"] == "balance.credited")
    assert credited["data"] == {"currency": "USD", "amount": "50.00", "available": "50.00"}

    # The flaky receiver failed three times, then took it: four requests, one webhook-id, all verifiable.
    flaky = wait_for(lambda: (r := receiver.to("/flaky")) and len(r) >= 4 and r)
    assert len({r.headers["webhook-id"] for r in flaky}) == 1
    assert all(verify(flaky_secret, r)["id"] == order_event.id for r in flaky)
    wait_for(lambda: statuses(committed_tenant) == [DeliveryStatus.SUCCEEDED] * 4)
    with tenant_context(committed_tenant):
        delivery = WebhookDelivery.objects.get(endpoint__url=receiver.url("/flaky"))
        assert delivery.pk == flaky[0].headers["webhook-id"]
        numbers = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("number", "response_status"))
        assert numbers == [(1, 500), (2, 503), (3, 500), (4, 200)]

    # Nothing else is to come: the rolled-back event was never recorded, and every delivery is finished.
    with tenant_context(committed_tenant):
        assert not Event.objects.filter(type="order.failed").exists()
        assert WebhookDelivery.objects.count() == 4
    assert "ord_rolled_back" not in str([r.body for r in receiver.requests])
    assert len(receiver.requests) == 7


def test_the_sandbox_twin_delivers_to_its_own_endpoints(committed_tenant, celery_worker_process, receiver):
    with tenant_context(committed_tenant):
        webhook_endpoint_create(url=receiver.url("/live"))
    with tenant_context(tenant_sandbox_ensure(tenant=committed_tenant)):
        _, sandbox_secret = webhook_endpoint_create(url=receiver.url("/sandbox"))
        with transaction.atomic():
            event_emit(type="order.completed", data={"order_id": "ord_sandbox"})
    (received,) = wait_for(lambda: receiver.to("/sandbox"))
    assert verify(sandbox_secret, received)["data"] == {"order_id": "ord_sandbox"}
    with tenant_context(committed_tenant):  # the live twin has nothing to send, so nothing will ever arrive
        assert not WebhookDelivery.objects.exists()
    assert receiver.to("/live") == []


def test_a_lost_publish_is_recovered_by_the_sweeper(committed_tenant, celery_worker_process, receiver, monkeypatch):
    with tenant_context(committed_tenant):
        _, secret = webhook_endpoint_create(url=receiver.url())
        monkeypatch.setattr(publish, "publish_drain", lambda *args, **kwargs: False)  # the broker "lost" it
        with transaction.atomic():
            event = event_emit(type="batch.completed", data={"batch_id": "bat_1"})
        monkeypatch.undo()
        # No drain was published: the delivery waits, never claimed or attempted, and nothing was sent.
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.PENDING, 0)
        assert not WebhookAttempt.objects.exists()
        assert receiver.requests == []
        # Long after it was due, nobody has run it: the beat sweeper publishes it again.
        WebhookDelivery.objects.update(enqueued_at=timezone.now() - timedelta(minutes=10))
    assert webhook_deliveries_sweep() >= 1
    (received,) = wait_for(lambda: receiver.requests)
    assert verify(secret, received)["id"] == event.id
