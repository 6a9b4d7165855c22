"""RabbitMQ as the broker (quorum queues, publisher confirms), restarted mid-delivery: nothing lost or doubled.

Runs under `make test-scale` against the machine's RabbitMQ (a virtual host of its own), with the private
PostgreSQL of the resilience stack; skipped where no RabbitMQ is reachable. While orders stream in, the broker's
application is stopped for 15 s and started again: web answers 201 (the sweepers publish what could not be
published) or a clean 503, workers reconnect by themselves, every accepted reward is emailed once, every
order.created webhook arrives, and the ledger balances.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from testsupport import rabbitmq

from .load import Summary
from .stack import Stack
from .test_outages import CLIENTS, readyz, steady_stream, verify

pytestmark = pytest.mark.scale


@pytest.fixture(scope="module")
def rabbit_stack(smtp_server) -> Iterator[Stack]:
    reason = rabbitmq.unavailable_reason()
    if reason:
        pytest.skip(f"RabbitMQ tests skipped: {reason}")
    with rabbitmq.vhost("rp_resilience") as broker_url:
        stack = Stack(smtp_port=smtp_server.port, CELERY_BROKER_URL=broker_url)
        try:
            stack.start_all()
            yield stack
        finally:
            stack.close()


def test_rabbitmq_restarted_while_orders_are_delivered(rabbit_stack, smtp_server, webhook_receiver):
    stack = rabbit_stack
    stream = steady_stream(stack, webhook_receiver)
    tenant, domain = stream.tenant, stream.domain
    stopped_at = time.monotonic()
    rabbitmq.stop_app()
    try:
        time.sleep(3)
        ready_status, ready = readyz(stack.port)
        assert ready_status == 503 and ready["checks"]["broker"]["ok"] is False, ready
        time.sleep(max(0.0, 15 - (time.monotonic() - stopped_at)))
    finally:
        rabbitmq.start_app()
    back_at = time.monotonic()
    time.sleep(12)
    results = stream.stop()
    during = [r for r in results if stopped_at <= r.started < back_at]
    assert during, "no order was sent while RabbitMQ was down"
    summary = Summary("RabbitMQ (quorum queues, publisher confirms) stopped for 15 s while orders are delivered")
    summary.add(
        f"{CLIENTS} clients; {len(during)} orders sent while the broker was down, "
        f"{sum(1 for r in during if not r.unavailable)} of them accepted on the first try; "
        f"/readyz answered {ready_status} (broker: {ready['checks']['broker']['detail']})"
    )
    verify(stack, tenant, domain, results, smtp_server, webhook_receiver, summary, allow_email_repeats=False)
    summary.print()
