"""A broker (Redis) outage while orders arrive: the committed order still answers 201, and the reward is left
pending for the fulfilment sweeper, which publishes it once the broker is back."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context

from funds.selectors import ledger_invariant_violations
from orders.models import Order, Reward
from testsupport.orders import digital_order


@contextmanager
def broker_unreachable():
    """Celery publishes to a port where nothing listens (as when Redis is stopped), then is put back."""
    from rewards_portal.celery import app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved = app.conf.broker_url, app.conf.broker_write_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url = app.conf.broker_write_url = f"redis://127.0.0.1:{port}/0"
    app._pool = app.amqp._producer_pool = None
    try:
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        app.conf.broker_url, app.conf.broker_write_url, app._pool, app.amqp._producer_pool = saved


def test_order_committed_while_the_broker_is_down_answers_201_and_waits_for_the_sweeper(
    api_a, funded_a, shop, django_capture_on_commit_callbacks
):
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00"), HTTP_IDEMPOTENCY_KEY="b-1")
    assert callbacks, "the order's dispatch runs after commit"
    assert response.status_code == 201, response.content
    order_id = response.json()["id"]
    with tenant_context(funded_a):
        reward = Reward.objects.get(order_id=order_id)
        assert reward.status == "pending" and reward.hold_id is not None
        assert Order.objects.filter(pk=order_id).exists()
        assert ledger_invariant_violations() == []
        from fulfillment.services import rewards_due

        assert str(reward.id) not in rewards_due()  # within the lease its task may still be on its way
        Reward.objects.filter(pk=reward.pk).update(created_at=timezone.now() - timedelta(hours=1))
        assert str(reward.id) in rewards_due()  # the sweeper publishes it once the broker is back


def test_the_worker_survives_acking_on_a_connection_lost_to_a_redis_restart():
    """After Redis restarts, a task that finishes acks on the old channel, whose collected connection makes
    kombu's Redis transport raise AttributeError: the worker's consumer treats that as a lost connection
    (logged, reconnects) instead of exiting."""
    import logging
    from types import SimpleNamespace

    from celery.utils.timer2 import Timer
    from kombu.message import Message

    from rewards_portal.celery import ResilientConsumer, app

    assert app.conf.worker_consumer == "rewards_portal.celery:ResilientConsumer"
    timer = Timer()
    consumer = ResilientConsumer(
        lambda *args: None, app=app, hostname="t@test", timer=timer,
        controller=SimpleNamespace(use_eventloop=False, semaphore=None),
    )  # fmt: skip

    class LostChannel:
        def basic_ack(self, delivery_tag, multiple=False):
            raise AttributeError("'NoneType' object has no attribute 'hostname'")

    message = Message(body=b"{}", delivery_tag=1, channel=LostChannel())
    message.ack_log_error(logging.getLogger("test"), consumer.connection_errors)  # logged, not raised
    timer.stop()
