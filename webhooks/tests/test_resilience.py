"""Resilience: 1,000 `order.created` events flow while the whole worker pool is killed with SIGKILL at random.

Client threads place orders through orders.create.order_create, each emitting `order.created` in its own
transaction; real Celery workers (subprocesses) deliver them to a real HTTP receiver on 127.0.0.1. The main
thread kills every worker (kill -9: reserved tasks lost, claims left `sending`, requests cut mid-flight) at
random moments and restarts the pool; a sweeper thread does what beat does. The test settings keep the
`sending` claim short (WEBHOOK_SENDING_LEASE_SECONDS) and this test the sweeper's re-publish delay, so what
a dead worker held is recovered within seconds.

Delivery is at-least-once: every event must arrive, verified as a receiver would verify it, under the
webhook-id of its delivery. A copy arrives twice only if a kill caught its delivery claimed (`sending`: the
receiver may have answered before the outcome was recorded): at most one extra copy per such kill, counted.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from django_tenants.utils import tenant_context

from funds.selectors import ledger_invariant_violations
from funds.services import funds_deposit
from orders.create import order_create
from orders.idempotency import request_hash
from orders.planning import RewardInput
from testsupport.catalog import make_shop
from testsupport.webhooks import assert_resends_bounded, claimed_delivery_ids
from webhooks.endpoints import webhook_endpoint_create
from webhooks.models import DeliveryStatus, Event, WebhookDelivery
from webhooks.tasks import webhook_deliveries_sweep

from .helpers import verify

pytestmark = pytest.mark.worker

ORDERS = 1_000
CLIENTS = 4
# Orders are paced over this long, and the kills spread over it (a worker takes seconds to boot), so every kill
# lands with events in flight: delivery keeps pace with the orders, so once they stop nothing is in flight.
PRODUCE_SECONDS = 30.0
KILLS = 4
SWEEP_EVERY = 1.0  # beat's interval, shortened
# WEBHOOK_REQUEUE_AFTER_SECONDS for the sweeper (production: 300). Not much shorter: a delivery whose task
# is merely waiting in the queue is re-published every time this passes, which on a busy machine floods
# the queue with (harmless, but slow) duplicate tasks.
REQUEUE_AFTER = 20
DRAIN_TIMEOUT = 75.0


def _place_orders(tenant, product, *, count: int, start: float, interval: float, placed: list, errors: list):
    """One client: `count` single-reward orders, one every `interval` seconds from `start` (never faster)."""
    from orders.selectors import order_get, order_render

    try:
        with tenant_context(tenant):
            for i in range(count):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                reward = RewardInput(
                    product_id=str(product.id),
                    amount=Decimal("10.00"),
                    currency="USD",
                    delivery_method="email",
                    recipient={"name": "Resilient Recipient", "email": f"r{len(placed)}@resilience.example"},
                    message="Thanks!",
                    # scheduled: the workers' time goes to webhooks, not to fulfilling the rewards
                    deliver_at=timezone.now() + timedelta(days=30),
                )
                _, body, _ = order_create(
                    order_type="digital",
                    rewards=[reward],
                    idempotency_key=None,
                    body_hash=request_hash({"client": threading.get_ident(), "i": i}),
                    render=lambda order: order_render(order_get(order_id=order.id)),
                )
                placed.append(body["id"])
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)
    finally:
        connection.close()


def _sweep_until(stop: threading.Event, sweeps: list, errors: list) -> None:
    """What beat does: publish due deliveries whose task was lost or whose sender's lease ran out."""
    try:
        while not stop.is_set():
            sweeps.append(webhook_deliveries_sweep.apply().get())
            stop.wait(SWEEP_EVERY)
    except BaseException as exc:
        errors.append(exc)
    finally:
        connection.close()


def _queued(queue: str = "webhooks") -> int:
    from rewards_portal.celery import app

    with app.connection_for_read() as conn:
        return conn.default_channel.queue_declare(queue).message_count


def _purge_queued(schema_name: str, queue: str = "webhooks") -> int:
    """Remove this tenant's tasks still waiting in the queue (duplicates from the sweeper, no-ops by now).

    The tenant is dropped after the test: left there, each would fail in a worker of a later test run that
    happens to use the same test slot, slowly (a traceback each) and ahead of that run's own tasks.
    """
    from rewards_portal.celery import app

    if app.conf.broker_url.startswith("amqp"):
        return 0  # `make test-scale` gives each run a RabbitMQ virtual host of its own, deleted after the run
    key = (app.conf.broker_transport_options or {}).get("global_keyprefix", "") + queue
    removed = 0
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        for message in client.lrange(key, 0, -1):
            if json.loads(message).get("headers", {}).get("_schema_name") == schema_name:
                removed += client.lrem(key, 0, message)
    return removed


def _restart(pool) -> None:
    """pool.start(2); on an overloaded machine booting may take longer than start() waits: let it finish."""
    try:
        pool.start(2)
    except RuntimeError as exc:
        if "did not start" not in str(exc) or not all(p.poll() is None for p in pool.processes):
            raise
        print(f"\n(workers still booting after start()'s wait; going on: {pool.processes})")


def _in_flight(states: Counter) -> int:
    return states[DeliveryStatus.PENDING] + states[DeliveryStatus.SENDING]


def _unfinished(tenant) -> list[dict]:
    """The deliveries not yet succeeded, for a failure message."""
    with tenant_context(tenant):
        fields = ["id", "status", "attempt_count", "next_attempt_at", "enqueued_at", "locked_until", "last_error"]
        return list(WebhookDelivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).values(*fields)[:20])


def _states(tenant) -> Counter:
    with tenant_context(tenant):
        rows = WebhookDelivery.objects.values("status").annotate(n=Count("id"))
        return Counter({row["status"]: row["n"] for row in rows})


def test_every_event_arrives_at_least_once_while_workers_are_killed_at_random(
    committed_tenant, celery_worker_process, receiver, settings
):
    settings.WEBHOOK_REQUEUE_AFTER_SECONDS = REQUEUE_AFTER  # read by the in-process sweeper
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    shop = make_shop()
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount=str(10 * ORDERS))
        endpoint, secret = webhook_endpoint_create(url=receiver.url("/orders"), events=["order.created"])
    connection.set_schema_to_public()

    placed: list[str] = []
    errors: list[BaseException] = []
    sweeps: list[int] = []
    stop_sweeping = threading.Event()
    started = time.monotonic()
    per_client = ORDERS // CLIENTS
    clients = [
        threading.Thread(
            target=_place_orders,
            args=(committed_tenant, shop.coffee_usd),
            kwargs={
                "count": per_client,
                "start": started,
                "interval": PRODUCE_SECONDS / per_client,
                "placed": placed,
                "errors": errors,
            },
            daemon=True,
        )
        for _ in range(CLIENTS)
    ]
    sweeper = threading.Thread(target=_sweep_until, args=(stop_sweeping, sweeps, errors), daemon=True)
    for thread in [*clients, sweeper]:
        thread.start()

    kills: list[dict] = []
    held: Counter[str] = Counter()  # delivery id -> kills that caught it claimed
    try:
        # Kill -9 at random moments with events in flight, restarting the pool each time.
        # At random moments spread over the production (later if a restart took longer).
        kill_at = sorted(rng.uniform(1.0, PRODUCE_SECONDS - 4.0) for _ in range(KILLS))
        for at in kill_at:
            time.sleep(max(0.0, started + at - time.monotonic()))
            while not _in_flight(states := _states(committed_tenant)):
                assert time.monotonic() - started < 120, "no event in flight to kill the workers under"
                time.sleep(0.05)
            celery_worker_process.kill()
            with tenant_context(committed_tenant):
                claimed = claimed_delivery_ids()  # what the dead workers held: all a kill can send twice
            held.update(claimed)
            kills.append(
                {
                    "at": round(time.monotonic() - started, 1),
                    "placed": len(placed),
                    "in_flight": _in_flight(states),
                    "sending": states[DeliveryStatus.SENDING],
                    "held": len(claimed),
                }
            )
            time.sleep(rng.uniform(0.0, 1.0))  # events keep coming while no worker runs
            _restart(celery_worker_process)
        for thread in clients:
            thread.join(timeout=max(0.0, started + 240 - time.monotonic()))  # ~20 s on an idle machine
        assert not errors, errors
        assert len(placed) == ORDERS
        produced_at = time.monotonic() - started

        # Drain: every delivery succeeds (recovered by the sweeper where a killed worker lost it).
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while (states := _states(committed_tenant))[DeliveryStatus.SUCCEEDED] < ORDERS:
            assert not errors, errors
            if time.monotonic() > deadline:
                pytest.fail(
                    f"not every delivery succeeded {DRAIN_TIMEOUT:g}s after the last order: {dict(states)}; kills"
                    f" {kills}; queued {_queued()}; now {timezone.now()}; sweeps {sweeps[-10:]};"
                    f" unfinished {_unfinished(committed_tenant)}"
                )
            time.sleep(0.2)
        drained_at = time.monotonic() - started
    finally:
        stop_sweeping.set()
        sweeper.join(timeout=30)
        leftover = _purge_queued(committed_tenant.schema_name)
    assert not errors, errors
    assert states == Counter({DeliveryStatus.SUCCEEDED: ORDERS}), states

    assert len(kills) >= 3 and all(k["in_flight"] for k in kills), kills  # every kill with events in flight

    # What the receiver got: complete requests only (a worker killed mid-write cuts its request short; a
    # receiver answers that with an error and the delivery, never marked succeeded, is sent again).
    requests = receiver.to("/orders")
    complete = [r for r in requests if len(r.body) == int(r.headers.get("content-length") or -1)]
    torn = len(requests) - len(complete)
    with tenant_context(committed_tenant):
        events = dict(Event.objects.filter(type="order.created").values_list("id", "data__id"))
        delivery_of = dict(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("event_id", "id"))
        assert sorted(events.values()) == sorted(placed)  # one event per order, no more
        assert len(delivery_of) == ORDERS
        assert ledger_invariant_violations() == []

    arrivals: Counter[str] = Counter()
    for request in complete:
        payload = verify(secret, request)  # standardwebhooks: signature, timestamp, body
        assert payload["type"] == "order.created"
        assert payload["id"] in events, payload["id"]
        assert payload["data"]["id"] == events[payload["id"]]
        # the same webhook-id on every send of an event: its delivery's id
        assert request.headers["webhook-id"] == delivery_of[payload["id"]], payload["id"]
        arrivals[payload["id"]] += 1
    missing = set(events) - set(arrivals)
    assert not missing, f"{len(missing)} events never arrived: {sorted(missing)[:5]}"
    duplicates = assert_resends_bounded(Counter({str(delivery_of[e]): n for e, n in arrivals.items()}), held)
    print(
        f"\n{ORDERS} order.created events, {len(kills)} kill -9s (seed {seed}): {kills}"
        f"\nall placed after {produced_at:.1f}s, all delivered after {drained_at:.1f}s;"
        f" {len(complete)} requests received ({torn} torn), duplicates {duplicates}"
        f" = {duplicates / ORDERS:.2%}; sweeps {len(sweeps)}, re-published {sum(sweeps)}, {leftover} left queued"
    )
