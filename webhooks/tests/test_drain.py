"""Batched delivery: drains, how they are published, and what they leave behind — in-process, real receiver."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from webhooks import drain, publish, tasks
from webhooks.drain import webhook_deliveries_drain
from webhooks.endpoints import webhook_endpoint_create, webhook_endpoint_update
from webhooks.events import event_emit
from webhooks.models import DeliveryStatus, Event, WebhookAttempt, WebhookDelivery
from webhooks.sweeper import webhook_deliveries_sweep_schema

from .helpers import verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_a(tenant_a):
    """Tenant alpha's schema, holding only this test's deliveries: tests that commit (worker and browser tests)
    can leave a delivery of theirs due there, which a drain here would claim too (a count of 2 for 1 was seen in
    the full suite). Removed inside the test's transaction, so put back when it rolls back."""
    with tenant_context(tenant_a):
        WebhookDelivery.objects.all().delete()
        yield tenant_a


@pytest.fixture
def published(monkeypatch) -> list[dict]:
    """Drains the code under test publishes (recorded, not sent to the broker)."""
    calls: list[dict] = []

    def record(schema_name, **kwargs):
        calls.append({"schema_name": schema_name, **kwargs})
        return True

    monkeypatch.setattr(publish, "publish_drain", record)
    return calls


def emit_many(count: int, type_: str = "order.created") -> list[Event]:
    with transaction.atomic():
        return [event_emit(type=type_, data={"n": n}) for n in range(count)]


def test_one_transaction_publishes_one_drain_however_many_events(in_a, receiver, django_capture_on_commit_callbacks):
    webhook_endpoint_create(url=receiver.url("/one"))
    webhook_endpoint_create(url=receiver.url("/two"))
    with django_capture_on_commit_callbacks() as callbacks:
        events = emit_many(25)
    (callback,) = callbacks
    assert sorted(callback.delivery_ids) == sorted(
        WebhookDelivery.objects.filter(event__in=events).values_list("id", flat=True)
    )
    assert len(callback.delivery_ids) == 50


def test_a_drain_waiting_to_start_absorbs_later_commits(in_a, monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr(tasks, "webhook_deliveries_drain", FakeTask(sent))
    schema = connection.schema_name
    publish.drain_flag_clear(schema)

    assert publish.publish_drain(schema) is True
    # Other transactions commit before that drain starts: it will see their deliveries; nothing more is sent.
    assert publish.publish_drain(schema) is False
    assert publish.publish_drain(schema) is False
    assert len(sent) == 1
    # Once it has started (it clears the flag before claiming), the next commit needs a drain of its own.
    publish.drain_flag_clear(schema)
    assert publish.publish_drain(schema) is True
    # The sweeper does not depend on the flag.
    assert publish.publish_drain(schema, dedupe=False) is True
    assert [call["headers"] for call in sent] == [{"_schema_name": schema}] * 3
    publish.drain_flag_clear(schema)


class FakeTask:
    def __init__(self, sent: list[dict]) -> None:
        self.sent = sent

    def apply_async(self, **kwargs) -> None:
        self.sent.append(kwargs)


def test_a_drain_delivers_every_due_delivery_in_batches_with_a_few_statements(
    in_a, receiver, published, settings, monkeypatch
):
    settings.WEBHOOK_DRAIN_BATCH = 40
    monkeypatch.setattr(drain, "FLUSH_SECONDS", 30)  # outcomes written per finished claim: a stable count
    endpoints = [webhook_endpoint_create(url=receiver.url(f"/{n}")) for n in range(3)]
    events = emit_many(30)

    with CaptureQueriesContext(connection) as queries:
        made = webhook_deliveries_drain()

    assert made == 90
    for n, (endpoint, secret) in enumerate(endpoints):
        got = receiver.to(f"/{n}")
        assert sorted(verify(secret, r)["id"] for r in got) == sorted(e.id for e in events)
        ids = dict(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("event_id", "id"))
        assert all(r.headers["webhook-id"] == ids[verify(secret, r)["id"]] for r in got)
    assert set(WebhookDelivery.objects.values_list("status", "attempt_count", "last_status_code")) == {
        (DeliveryStatus.SUCCEEDED, 1, 200)
    }
    assert WebhookAttempt.objects.filter(succeeded=True, number=1, response_status=200).count() == 90
    # One delivery at a time took ~9 statements each (810 here); a batch takes a handful for all of its own.
    assert len(queries) < 90, [q["sql"][:80] for q in queries]
    # Full batches asked for help from other workers; nothing left to retry.
    assert all(call.get("countdown", 0) == 0 for call in published)


def test_a_slow_receiver_holds_up_only_its_own_deliveries(in_a, receiver, published, settings):
    settings.WEBHOOK_DRAIN_BATCH = 10
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 2
    receiver.slow("/slow", 0.6)
    slow, _ = webhook_endpoint_create(url=receiver.url("/slow"), events=["order.created"])
    fast, _ = webhook_endpoint_create(url=receiver.url("/fast"), events=["reward.delivered"])
    emit_many(10, "order.created")  # older: the first claim is the slow receiver's alone
    emit_many(10, "reward.delivered")

    started = time.monotonic()
    webhook_deliveries_drain(budget_seconds=1.0)
    took = time.monotonic() - started

    fast_states = list(WebhookDelivery.objects.filter(endpoint=fast).values_list("status", flat=True))
    assert fast_states == [DeliveryStatus.SUCCEEDED] * 10
    # Two lanes to the slow receiver, 0.6 s a request, 1 s of budget: 4 sent (each lane starts a second
    # request before the budget is spent, none after); the rest are given back as
    # they were (no attempt counted) and the drain re-publishes itself for them.
    slow_rows = list(WebhookDelivery.objects.filter(endpoint=slow).values_list("status", "attempt_count"))
    sent = slow_rows.count((DeliveryStatus.SUCCEEDED, 1))
    assert 2 <= sent <= 4, slow_rows  # (2 if the machine is so busy that a request takes over 1 s)
    assert slow_rows.count((DeliveryStatus.PENDING, 0)) == 10 - sent
    assert WebhookAttempt.objects.filter(delivery__endpoint=slow).count() == sent
    assert not WebhookDelivery.objects.filter(status=DeliveryStatus.SENDING).exists()
    assert took < 4
    assert any(call.get("countdown", 0) == 0 for call in published)


def test_a_claim_left_by_a_killed_worker_is_sent_again_after_its_lease(in_a, receiver, published):
    _, secret = webhook_endpoint_create(url=receiver.url())
    (event,) = emit_many(1)
    delivery = event.deliveries.get()
    # A worker claimed it (its first attempt), then died: the lease has not run out yet.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING,
        claim_token="dead",
        attempt_count=1,
        locked_until=timezone.now() + timedelta(seconds=30),
    )
    assert webhook_deliveries_drain() == 0 and receiver.requests == []
    assert webhook_deliveries_sweep_schema() == 0

    WebhookDelivery.objects.filter(pk=delivery.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    # The sweeper publishes a drain for it at once (no wait for WEBHOOK_REQUEUE_AFTER_SECONDS)...
    assert webhook_deliveries_sweep_schema() == 1
    # ...which sends it again under the same webhook-id.
    assert webhook_deliveries_drain() == 1
    (received,) = receiver.requests
    assert received.headers["webhook-id"] == delivery.pk and verify(secret, received)["id"] == event.id
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, delivery.claim_token) == (DeliveryStatus.SUCCEEDED, 2, "")


def test_a_retry_is_left_for_a_drain_published_for_its_time(in_a, receiver, published, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 5, 300]
    receiver.script("/hook", [(500, {})])
    webhook_endpoint_create(url=receiver.url())
    (event,) = emit_many(1)

    assert webhook_deliveries_drain() == 1
    delivery = event.deliveries.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.retry_index == 1
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 4 <= wait <= 5.6
    assert webhook_deliveries_drain() == 0  # not due yet
    # Each drain published one for that retry (deduplicated per due time in Redis when real).
    countdowns = [call["countdown"] for call in published if call.get("countdown")]
    assert countdowns and all(3.9 <= c <= 5.6 for c in countdowns)


def test_deliveries_of_an_endpoint_disabled_meanwhile_fail_unsent(in_a, receiver, published):
    endpoint, _ = webhook_endpoint_create(url=receiver.url())
    (event,) = emit_many(1)
    delivery = event.deliveries.get()
    # Claimed by a worker that died; then the endpoint was disabled (which fails pending deliveries only).
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, claim_token="dead", locked_until=timezone.now() - timedelta(seconds=1)
    )
    webhook_endpoint_update(endpoint=endpoint, enabled=False)

    assert webhook_deliveries_drain() == 0
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_error == "The endpoint is disabled."
    assert receiver.requests == []


def test_a_url_that_cannot_be_sent_is_a_failed_attempt_not_a_dead_drain(in_a, receiver, published, settings):
    # The second attempt is not due within this drain, however slow a loaded machine makes it (0.3 s in tests).
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 60]
    bad, _ = webhook_endpoint_create(url=receiver.url("/bad"))
    good, _ = webhook_endpoint_create(url=receiver.url("/good"))
    # Stored before URLs had to be ASCII: http.client cannot encode it.
    type(bad).objects.filter(pk=bad.pk).update(url=receiver.url("/café"))
    emit_many(3)

    assert webhook_deliveries_drain() == 6  # every claimed delivery got its attempt recorded
    assert set(WebhookDelivery.objects.filter(endpoint=good).values_list("status", flat=True)) == {
        DeliveryStatus.SUCCEEDED
    }
    failed = list(WebhookDelivery.objects.filter(endpoint=bad).values_list("status", "attempt_count", "last_error"))
    assert len(failed) == 3
    assert all(status == DeliveryStatus.PENDING and count == 1 for status, count, _ in failed), failed
    assert all(error.startswith("UnicodeEncodeError") for *_, error in failed), failed
    assert drain._busy_endpoints() == []


def test_a_drain_waiting_for_a_slow_answer_does_not_spin(in_a, receiver, published, settings):
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 2
    receiver.slow("/slow", 1.5)
    webhook_endpoint_create(url=receiver.url("/slow"))
    emit_many(3)  # two lanes: one sends two (3 s), the other one (1.5 s) and is done while the first waits

    cpu_before = time.thread_time()
    started = time.monotonic()
    assert webhook_deliveries_drain() == 3
    took = time.monotonic() - started
    cpu = time.thread_time() - cpu_before
    assert took >= 2.9  # two rounds of 1.5 s on one of the lanes
    # The drain thread sleeps while the lanes wait; polling finished lanes used to burn a whole core here.
    assert cpu < 0.5 * took, f"{cpu:.2f} s CPU in {took:.2f} s"


def test_a_request_never_outlives_its_claims_lease(in_a, receiver, published, settings):
    settings.WEBHOOK_SENDING_LEASE_SECONDS = 3
    settings.WEBHOOK_TIMEOUT_SECONDS = 15
    receiver.slow("/slow", 6)
    webhook_endpoint_create(url=receiver.url("/slow"))
    (event,) = emit_many(1)

    started = time.monotonic()
    assert webhook_deliveries_drain() == 1
    assert time.monotonic() - started < 3  # cut before the lease ran out, not after 6 s or 15 s
    delivery = event.deliveries.get()
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.PENDING, 1)
    # its timeout was what the lease had left: 3 s - the 1 s margin = 2 s at most
    assert 1.0 <= float(re.match(r"timed out after ([\d.]+) s", delivery.last_error).group(1)) <= 2.0
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.duration_ms < 3000 and not attempt.succeeded


def test_a_failing_drain_frees_every_endpoint_it_was_sending_to(in_a, receiver, published, monkeypatch):
    for n in range(3):
        webhook_endpoint_create(url=receiver.url(f"/{n}"))
    emit_many(2)

    def broken(sends, *, token):
        raise RuntimeError("database went away")

    monkeypatch.setattr(drain, "_record", broken)
    with pytest.raises(RuntimeError, match="database went away"):
        webhook_deliveries_drain()
    # Nothing was recorded (the claims run out with their lease), but no endpoint stays marked in flight,
    # which would keep this worker process from ever claiming its deliveries again.
    assert drain._busy_endpoints() == []
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENDING}
