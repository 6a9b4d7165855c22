"""Rewards delivered per second end to end, with two real Celery worker processes.

End to end means: `orders.create.order_create` commits an order of email rewards in this process (funds
held, `order.created` emitted, one `reward_fulfil_task` per reward published on commit) → a worker claims the
reward, issues a code at the sandbox supplier, captures the hold and emails the code through Django's SMTP
backend → the message arrives at a real SMTP server (aiosmtpd) on 127.0.0.1 in this process.

Measured: rewards/s from the first order's commit to the N-th message received, and the per-reward latency
(its order's commit → its message received; messages are matched to rewards by their unique recipient
address), p50 and p99. Checked afterwards: every reward `delivered` (and so every order `completed`),
exactly one message per recipient, and `ledger_invariant_violations() == []` in the tenant. Also recorded:
CPU seconds per reward in the workers and in this process. Ceiling, measured right after on the same SMTP
server: plain SMTP sends of reward-sized messages from this process over as many kept-open connections as
the workers have threads (no database, no supplier, no rendering).

N defaults to 500 rewards (BENCH_DELIVERY_REWARDS) in orders of 100, fewer when the run's time budget is
short (sized from the pace of an untimed warm-up).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from decimal import Decimal

from .common import Context, Row, Workers, median, memory_row, percentile

REWARDS = int(os.environ.get("BENCH_DELIVERY_REWARDS", "500"))
MIN_REWARDS = 100
ORDER_SIZE = 100  # rewards per order (MAX_REWARDS_PER_ORDER is 500)
WORKERS = 2
CONCURRENCY = 4  # threads per worker process; see Workers for why threads
WARM_UP = 2 * WORKERS * CONCURRENCY  # one reward per worker thread, untimed
PACE = 15  # rewards/s assumed when sizing N (the slowest seen on a busy 2-core machine was ~13)
STALL_SECONDS = 30  # give up when no message arrived for this long
DOMAIN = "delivery.bench.example"


class SmtpSink:
    """aiosmtpd on 127.0.0.1 that notes when each message arrives, per recipient address."""

    def __init__(self) -> None:
        import logging

        from aiosmtpd.controller import Controller

        from .common import free_port

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # it echoes whole messages at DEBUG
        self.arrivals: dict[str, list[float]] = {}
        self.count = 0
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                now = time.time()
                with sink._lock:
                    for address in envelope.rcpt_tos:
                        sink.arrivals.setdefault(address.lower(), []).append(now)
                    sink.count += 1
                return "250 OK"

        self.port = free_port()  # aiosmtpd's readiness check cannot use port 0
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def received(self, addresses: list[str]) -> int:
        with self._lock:
            return sum(1 for address in addresses if address in self.arrivals)

    def stop(self) -> None:
        self.controller.stop()


def _smtp_ceiling(sink: SmtpSink, count: int, threads: int = WORKERS * CONCURRENCY) -> float:
    """Messages/s straight from this process to the same SMTP server: `threads` senders, one kept-open
    connection each, a reward-sized message (~3 KB). The mail path's ceiling: no database, no supplier."""
    import smtplib
    from email.message import EmailMessage

    addresses = [f"ceiling{i}@{DOMAIN}" for i in range(count)]
    body = "Your gift card code: XXXX-XXXX-XXXX-XXXX\n" + "Thank you for your great work this quarter. " * 60

    def send(mine: list[str]) -> None:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as smtp:
            for address in mine:
                message = EmailMessage()
                message["From"], message["To"], message["Subject"] = "rewards@example.com", address, "Your reward"
                message.set_content(body)
                smtp.send_message(message)

    started = time.monotonic()
    senders = [threading.Thread(target=send, args=(addresses[n::threads],)) for n in range(threads)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    elapsed = time.monotonic() - started
    return sink.received(addresses) / elapsed


def _setup():
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from tenants.services import tenant_create
    from testsupport.catalog import make_shop

    tenant = tenant_create(slug=f"bench-delivery-{uuid.uuid4().hex[:6]}", name="Bench Delivery")
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="10000000")
    connection.set_schema_to_public()
    return tenant, shop


def _place(tenant, product, addresses: list[str]) -> tuple[str, float]:
    """One order of email rewards, one per address; returns (order id, time.time() right after commit)."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    from orders.create import order_create
    from orders.idempotency import request_hash
    from orders.planning import RewardInput
    from orders.selectors import order_get, order_render

    rewards = [
        RewardInput(
            product_id=str(product.id),
            amount=Decimal("10.00"),
            currency="USD",
            delivery_method="email",
            recipient={"name": "Bench Recipient", "email": address},
            message="Thank you!",
        )
        for address in addresses
    ]
    with tenant_context(tenant):
        _, body, _ = order_create(
            order_type="digital",
            rewards=rewards,
            idempotency_key=None,
            body_hash=request_hash({"bench": addresses[0]}),
            render=lambda order: order_render(order_get(order_id=order.id)),
        )
        committed = time.time()  # order_create's atomic block has committed (and published the tasks)
    connection.set_schema_to_public()
    return body["id"], committed


def _wait(sink: SmtpSink, addresses: list[str], deadline: float) -> bool:
    """Until every address got its message (True), nothing arrives for STALL_SECONDS, or the deadline."""
    seen, last_progress = -1, time.monotonic()
    while time.monotonic() < deadline:
        got = sink.received(addresses)
        if got == len(addresses):
            return True
        if got != seen:
            seen, last_progress = got, time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            return False
        time.sleep(0.02)
    return False


def _check(tenant, order_ids: list[str]) -> tuple[dict[str, int], dict[str, int], list[str]]:
    from django.db import connection
    from django.db.models import Count
    from django_tenants.utils import tenant_context

    from funds.selectors import ledger_invariant_violations
    from orders.models import Order, Reward

    with tenant_context(tenant):
        statuses = dict(
            Reward.objects.filter(order_id__in=order_ids).values_list("status").annotate(n=Count("id")).order_by()
        )
        orders = dict(Order.objects.filter(id__in=order_ids).values_list("status").annotate(n=Count("id")).order_by())
        violations = ledger_invariant_violations()
    connection.set_schema_to_public()
    return statuses, orders, violations


def run(ctx: Context) -> list[Row]:
    load_before = os.getloadavg()
    tenant, shop = _setup()
    sink = SmtpSink()
    workers = Workers(
        ctx,
        name="delivery",
        count=WORKERS,
        concurrency=CONCURRENCY,
        env={
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
            "EMAIL_USE_TLS": "false",
        },
    )
    try:
        workers.start()
        # Warm-up (untimed): first-task imports, template loading, connections in every worker thread.
        warm = [f"warm{i}@{DOMAIN}" for i in range(WARM_UP)]
        warm_order, warm_committed = _place(tenant, shop.coffee_usd, warm)
        if not _wait(sink, warm, time.monotonic() + 60):
            raise RuntimeError(f"warm-up rewards were not delivered; worker log: {workers.log_tail()}")
        warm_rate = WARM_UP / max(max(sink.arrivals[a][0] for a in warm) - warm_committed, 0.01)
        # Size N to the budget: this module takes at most half of what is left (webhooks comes next). The
        # warm-up's pace understates the steady one (it includes first-task costs): never assume below PACE.
        affordable = int(max(warm_rate, PACE) * max(ctx.remaining() / 2 - 15, 0))
        count = max(MIN_REWARDS, min(REWARDS, affordable // ORDER_SIZE * ORDER_SIZE))
        addresses = [f"r{i}@{DOMAIN}" for i in range(count)]
        order_ids, committed_at = [], {}
        cpu_before = workers.cpu_seconds(), time.process_time()
        for start in range(0, count, ORDER_SIZE):
            chunk = addresses[start : start + ORDER_SIZE]
            order_id, committed = _place(tenant, shop.coffee_usd, chunk)
            order_ids.append(order_id)
            committed_at.update(dict.fromkeys(chunk, committed))
        placed_s = max(committed_at.values()) - min(committed_at.values())
        complete = _wait(sink, addresses, time.monotonic() + max(ctx.remaining() - 10, 60))
        cpu_after = workers.cpu_seconds(), time.process_time()
        memory = workers.peak_memory()
    finally:
        workers.stop()
    try:
        ceiling = _smtp_ceiling(sink, count)
    finally:
        sink.stop()
    load_after = os.getloadavg()

    first_arrival = {a: sink.arrivals[a][0] for a in addresses if a in sink.arrivals}
    duplicates = sum(len(sink.arrivals[a]) - 1 for a in first_arrival)
    latencies = [first_arrival[a] - committed_at[a] for a in first_arrival]
    statuses, order_statuses, violations = _check(tenant, [*order_ids, warm_order])
    delivered_ok = statuses == {"delivered": count + WARM_UP}
    problems = []
    if not complete:
        problems.append(f"only {len(first_arrival)} of {count} messages arrived")
    if not delivered_ok:
        problems.append(f"reward statuses {statuses}")
    if violations:
        problems.append(f"ledger: {'; '.join(violations[:3])}")
    if duplicates:
        problems.append(f"{duplicates} duplicate messages")
    if order_statuses != {"completed": len(order_ids) + 1}:
        problems.append(f"order statuses {order_statuses} (every reward delivered: all should be completed)")
    worker_cpu = None if None in (cpu_before[0], cpu_after[0]) else cpu_after[0] - cpu_before[0]
    bench_cpu = cpu_after[1] - cpu_before[1]
    cpu = (f"worker CPU {worker_cpu / count * 1000:.1f} ms/reward, " if worker_cpu is not None else "") + (
        f"this process (order_create + SMTP sink) {bench_cpu / count * 1000:.1f} ms/reward"
    )
    verdict = "FAILED: " + ", ".join(problems) if problems else "all delivered, 1 email each, ledger balanced"
    load = f"load {load_before[0]:.1f} → {load_after[0]:.1f}"
    extra = {
        "rewards": count,
        "orders": len(order_ids),
        "order_size": ORDER_SIZE,
        "workers": WORKERS,
        "pool": f"threads x {CONCURRENCY}",
        "placing_s": placed_s,
        "warm_up_rewards_per_s": warm_rate,
        "statuses": statuses,
        "order_statuses": order_statuses,
        "worker_cpu_s": worker_cpu,
        "bench_process_cpu_s": bench_cpu,
        "ledger_violations": violations,
        "duplicates": duplicates,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    if not latencies:
        return [Row("delivery: rewards/s end to end, 2 workers", None, "rewards/s", "", verdict, extra)]
    elapsed = max(first_arrival.values()) - min(committed_at.values())
    rate = len(first_arrival) / elapsed
    return [
        Row(
            f"delivery: order → email received, {WORKERS} workers",
            round(rate, 1),
            "rewards/s",
            f"{rate / ceiling:.0%} of plain SMTP sends to the same server: {ceiling:,.0f} messages/s "
            f"({WORKERS * CONCURRENCY} kept-open connections)",
            f"{verdict}; {count} rewards in {len(order_ids)} order(s) of {ORDER_SIZE}, placed in {placed_s:.1f} s; "
            f"{cpu}; threads pool x{CONCURRENCY} per worker; {load}",
            {**extra, "elapsed_s": elapsed, "smtp_ceiling_per_s": ceiling},
        ),
        Row(
            "delivery: latency order commit → email received",
            round(percentile(latencies, 99) * 1000),
            "ms p99",
            f"p50 {median(latencies) * 1000:.0f} ms",
            f"per reward, all {count} of them queued within {placed_s:.1f} s: mostly time waiting in the queue",
            {"latencies_s": latencies},
        ),
        memory_row("Celery worker", memory, f"delivering {count} rewards (threads pool x{CONCURRENCY})"),
    ]
