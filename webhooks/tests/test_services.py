"""The outbox, signing, retries, disabling, rotation and the sweeper — driven in-process against a real receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context
from standardwebhooks import WebhookVerificationError

from accounts.services import staff_create
from core import crypto
from funds.services import funds_deposit, funds_hold, funds_hold_release, funds_set_low_balance_threshold
from webhooks.drain import webhook_delivery_attempt
from webhooks.endpoints import webhook_endpoint_create, webhook_endpoint_update, webhook_secret_rotate
from webhooks.events import event_emit
from webhooks.models import DeliveryStatus, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSecret
from webhooks.redelivery import event_redeliver, webhook_endpoint_redeliver_failed
from webhooks.sweeper import webhook_deliveries_sweep_schema

from .helpers import attempt_now, run_pending, verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_a(tenant_a):
    with tenant_context(tenant_a):
        yield tenant_a


def emit(type_: str = "order.created", **data) -> Event:
    with transaction.atomic():
        return event_emit(type=type_, data=data or {"order_id": "ord_1"})


# --- Outbox -----------------------------------------------------------------------------------------


def test_emit_writes_one_delivery_per_subscribed_enabled_endpoint(in_a, receiver):
    all_, _ = webhook_endpoint_create(url=receiver.url("/all"))
    star, _ = webhook_endpoint_create(url=receiver.url("/star"), events=["*"])
    orders, _ = webhook_endpoint_create(url=receiver.url("/orders"), events=["order.created", "order.failed"])
    webhook_endpoint_create(url=receiver.url("/rewards"), events=["reward.delivered"])
    webhook_endpoint_create(url=receiver.url("/off"), enabled=False)

    event = emit("order.created", order_id="ord_1", total={"amount": "25.00", "currency": "USD"})

    assert event.id.startswith("evt_")
    assert {d.endpoint_id for d in event.deliveries.all()} == {all_.id, star.id, orders.id}
    assert all(d.status == DeliveryStatus.PENDING for d in event.deliveries.all())


def test_emit_refuses_an_unknown_type(in_a):
    with transaction.atomic(), pytest.raises(ValueError, match="unknown"):
        event_emit(type="order.exploded", data={})


def test_a_rollback_emits_nothing_and_a_commit_publishes(in_a, receiver, django_capture_on_commit_callbacks):
    webhook_endpoint_create(url=receiver.url())
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            event_emit(type="order.created", data={"order_id": "ord_rolled_back"})
            1 / 0
    assert callbacks == []
    assert not Event.objects.exists() and not WebhookDelivery.objects.exists()

    with django_capture_on_commit_callbacks() as callbacks:
        emit()
    assert len(callbacks) == 1  # one publish of the delivery task, after commit


def test_funds_deposit_emits_balance_credited(in_a, receiver):
    _, secret = webhook_endpoint_create(url=receiver.url(), events=["balance.credited"])
    funds_deposit(currency="USD", amount="100.00")
    funds_deposit(currency="USD", amount="25.50")
    events = list(Event.objects.filter(type="balance.credited").order_by("created_at"))
    assert [e.data for e in events] == [
        {"currency": "USD", "amount": "100.00", "available": "100.00"},
        {"currency": "USD", "amount": "25.50", "available": "125.50"},
    ]
    assert run_pending() == 2
    assert [verify(secret, r)["data"]["amount"] for r in receiver.to("/hook")] == ["100.00", "25.50"]


def test_balance_low_only_on_crossing_below_the_threshold(in_a):
    funds_deposit(currency="USD", amount="100.00")
    funds_set_low_balance_threshold(currency="USD", threshold="50.00")

    def lows():
        return [e.data for e in Event.objects.filter(type="balance.low").order_by("created_at")]

    funds_hold(currency="USD", amount=Decimal("40.00"), reference="r1")  # 60: above
    assert lows() == []
    funds_hold(currency="USD", amount=Decimal("10.00"), reference="r2")  # 50: at, not below
    assert lows() == []
    held = funds_hold(currency="USD", amount=Decimal("5.00"), reference="r3")  # 45: crossed
    assert lows() == [{"currency": "USD", "available": "45.00", "low_balance_threshold": "50.00"}]
    funds_hold(currency="USD", amount=Decimal("5.00"), reference="r4")  # 40: still below, no new alert
    assert len(lows()) == 1
    funds_hold_release(hold=held)  # back to 45, still below
    funds_deposit(currency="USD", amount="20.00")  # 65: above again
    funds_hold(currency="USD", amount=Decimal("20.00"), reference="r5")  # 45: crossed again
    assert len(lows()) == 2


# --- Delivery -------------------------------------------------------------------------------------------


def test_delivery_is_signed_with_standard_webhooks_headers(in_a, receiver):
    _, secret = webhook_endpoint_create(url=receiver.url())
    event = emit("reward.delivered", reward_id="rwd_1")
    delivery = event.deliveries.get()

    attempt = webhook_delivery_attempt(delivery_id=delivery.pk)

    (received,) = receiver.requests
    payload = verify(secret, received)
    assert payload == {
        "id": event.id,
        "type": "reward.delivered",
        "created_at": payload["created_at"],
        "data": {"reward_id": "rwd_1"},
    }
    assert payload["created_at"].endswith("Z")
    assert received.headers["webhook-id"] == delivery.pk
    assert received.headers["content-type"] == "application/json"
    # The signature is the Standard Webhooks v1 HMAC, computed here without the library.
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{delivery.pk}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert received.headers["webhook-signature"] == f"v1,{expected}"
    assert abs(int(received.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 5
    assert attempt.succeeded and attempt.response_status == 200
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 1
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + "A" * 32, received)
    # Running the task again is harmless: nothing is sent twice.
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1


def test_failures_retry_on_the_schedule_with_the_same_webhook_id(in_a, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    receiver.script("/hook", [(500, {}), (502, {}), (500, {})])
    endpoint, secret = webhook_endpoint_create(url=receiver.url())
    delivery = emit().deliveries.get()

    expected = [5, 300, 1800]
    for seconds in expected:
        before = timezone.now()
        attempt = attempt_now(delivery)
        delivery.refresh_from_db()
        assert not attempt.succeeded and delivery.status == DeliveryStatus.PENDING
        wait = (delivery.next_attempt_at - before).total_seconds()
        assert seconds * 0.89 <= wait <= seconds * 1.11 + 1  # ±10 % jitter
        # Not due yet: a duplicate task does nothing.
        assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    attempt = attempt_now(delivery)
    assert attempt.succeeded

    assert len(receiver.requests) == 4
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.pk}
    assert all(verify(secret, r) for r in receiver.requests)
    statuses = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("number", "response_status"))
    assert statuses == [(1, 500), (2, 502), (3, 500), (4, 200)]
    first = WebhookAttempt.objects.get(delivery=delivery, number=1)
    assert len(first.response_excerpt) == 1024 and first.error == "HTTP 500"
    assert first.request_headers["webhook-id"] == delivery.pk
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None  # cleared by the success


def test_a_delivery_fails_after_the_last_scheduled_attempt(in_a, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 1, 1]
    receiver.script("/hook", [(500, {})] * 5)
    webhook_endpoint_create(url=receiver.url())
    delivery = emit().deliveries.get()
    for _ in range(3):
        attempt_now(delivery)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempt_count == 3
    assert attempt_now(delivery) is None and len(receiver.requests) == 3


def test_410_disables_the_endpoint_and_fails_its_pending_deliveries(in_a, receiver):
    receiver.script("/hook", [(410, {})])
    endpoint, _ = webhook_endpoint_create(url=receiver.url())
    first = emit().deliveries.get()
    second = emit().deliveries.get()

    attempt_now(first)

    endpoint.refresh_from_db()
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == DeliveryStatus.FAILED
    assert attempt_now(second) is None and len(receiver.requests) == 1
    assert not emit().deliveries.exists()  # a disabled endpoint gets no new deliveries


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_honour_retry_after(in_a, receiver, status):
    receiver.script("/hook", [(status, {"Retry-After": "120"})])
    webhook_endpoint_create(url=receiver.url())
    delivery = emit().deliveries.get()
    before = timezone.now()
    attempt_now(delivery)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert 119 <= (delivery.next_attempt_at - before).total_seconds() <= 122
    assert delivery.enqueued_at is None  # beyond the countdown window: the sweeper publishes it when due


def test_endpoint_failing_for_five_days_is_disabled_and_admins_emailed(
    in_a, receiver, django_capture_on_commit_callbacks
):
    staff_create(email="boss@alpha.example", role="admin")
    staff_create(email="viewer@alpha.example", role="viewer")
    receiver.script("/hook", [(500, {})] * 3)
    endpoint, _ = webhook_endpoint_create(url=receiver.url())
    delivery = emit().deliveries.get()
    attempt_now(delivery)
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is not None
    # Four days later it still fails: not yet.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=4))
    attempt_now(delivery)
    endpoint.refresh_from_db()
    assert endpoint.enabled
    # Past five days: the next failure disables it.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=5, hours=1))
    with django_capture_on_commit_callbacks(execute=True):  # the email goes after commit
        attempt_now(delivery)
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert not endpoint.enabled and "5 days" in endpoint.disabled_reason
    assert delivery.status == DeliveryStatus.FAILED
    (message,) = mail.outbox
    assert message.to == ["boss@alpha.example"]
    assert endpoint.url in message.subject and endpoint.id in message.body

    # Re-enabling clears the failure state; redeliver-failed sends what was missed, with the same webhook-id.
    webhook_endpoint_update(endpoint=endpoint, enabled=True)
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None and endpoint.disabled_reason == ""
    scheduled = webhook_endpoint_redeliver_failed(
        endpoint=endpoint, since=timezone.now() - timedelta(hours=1), until=None
    )
    assert scheduled == 1
    attempt_now(delivery)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.pk}


def test_during_a_rotation_both_secrets_verify(in_a, receiver):
    endpoint, old = webhook_endpoint_create(url=receiver.url())
    new, expires_at = webhook_secret_rotate(endpoint=endpoint)
    assert new != old and new.startswith("whsec_")
    assert timedelta(hours=23, minutes=59) < expires_at - timezone.now() <= timedelta(hours=24)

    delivery = emit().deliveries.get()
    webhook_delivery_attempt(delivery_id=delivery.pk)
    (received,) = receiver.requests
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert verify(old, received) == verify(new, received)

    # After the overlap, only the new secret signs.
    WebhookSecret.objects.filter(endpoint=endpoint, expires_at__isnull=False).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    event_redeliver(event=delivery.event)
    webhook_delivery_attempt(delivery_id=delivery.pk)
    latest = receiver.requests[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    verify(new, latest)
    with pytest.raises(WebhookVerificationError):
        verify(old, latest)


def test_secrets_are_encrypted_at_rest(in_a, receiver):
    endpoint, secret = webhook_endpoint_create(url=receiver.url())
    stored = WebhookSecret.objects.get(endpoint=endpoint).secret_encrypted
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert crypto.decrypt(stored) == secret
    assert len(crypto.decrypt(stored).removeprefix("whsec_")) == 32  # base64 of 24 bytes


def test_the_secret_never_appears_in_logs_or_attempt_records(in_a, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.script("/hook", [(500, {})])
    endpoint, secret = webhook_endpoint_create(url=receiver.url())
    rotated, _ = webhook_secret_rotate(endpoint=endpoint)
    delivery = emit().deliveries.get()
    attempt_now(delivery)
    attempt_now(delivery)
    assert caplog.records  # something was logged
    for value in (secret, rotated, secret.removeprefix("whsec_"), rotated.removeprefix("whsec_")):
        assert value not in caplog.text
        for record in caplog.records:
            assert value not in str(vars(record))
        for headers in WebhookAttempt.objects.values_list("request_headers", flat=True):
            assert value not in str(headers)


def test_redeliver_keeps_the_webhook_id_and_can_target_a_new_endpoint(in_a, receiver):
    first, _ = webhook_endpoint_create(url=receiver.url("/one"))
    event = emit()
    run_pending()
    late, late_secret = webhook_endpoint_create(url=receiver.url("/two"))

    deliveries = event_redeliver(event=event)
    assert [d.endpoint_id for d in deliveries] == [first.id]
    run_pending()
    one = receiver.to("/one")
    assert len(one) == 2 and one[0].headers["webhook-id"] == one[1].headers["webhook-id"]

    (delivery,) = event_redeliver(event=event, endpoint_id=late.id)
    assert delivery.endpoint_id == late.id
    run_pending()
    verify(late_secret, receiver.to("/two")[0])


# --- Concurrency and durability ---------------------------------------------------------------------------


def test_a_claimed_delivery_is_not_sent_by_a_second_worker(in_a, receiver):
    webhook_endpoint_create(url=receiver.url())
    delivery = emit().deliveries.get()
    # Another worker holds the lease (it claimed the delivery and is sending).
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, claim_token="other", locked_until=timezone.now() + timedelta(minutes=2)
    )
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert receiver.requests == []
    # If that worker died, the lease runs out and the delivery is sent by the next task.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert webhook_delivery_attempt(delivery_id=delivery.pk).succeeded


def test_sweeper_publishes_due_deliveries_whose_task_was_lost(in_a, receiver, django_capture_on_commit_callbacks):
    webhook_endpoint_create(url=receiver.url())
    delivery = emit().deliveries.get()
    now = timezone.now()
    # Published moments ago: the sweeper leaves it to that task.
    assert webhook_deliveries_sweep_schema(now=now) == 0
    # Never published (e.g. the broker was down at commit), or published long ago and never run.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(enqueued_at=None)
    with django_capture_on_commit_callbacks() as callbacks:
        assert webhook_deliveries_sweep_schema(now=now) == 1
    assert len(callbacks) == 1
    assert webhook_deliveries_sweep_schema(now=now) == 0  # just published: not again
    later = now + timedelta(minutes=6)
    assert webhook_deliveries_sweep_schema(now=later) == 1
    # Done deliveries are never swept.
    webhook_delivery_attempt(delivery_id=delivery.pk)
    assert webhook_deliveries_sweep_schema(now=later + timedelta(hours=1)) == 0
