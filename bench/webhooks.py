"""Webhook deliveries per second to a local receiver, and the delay from state change to delivery.

A small asyncio HTTP receiver on 127.0.0.1 (in this process) notes the arrival time of every request by its
`webhook-id` (= the delivery id) and answers 204. One endpoint (BENCH_WEBHOOK_ENDPOINTS) of a fresh tenant
subscribes to `order.created`. This process emits M events (default 2,000, BENCH_WEBHOOK_EVENTS; fewer when
the run's time budget is short) with `webhooks.events.event_emit` inside `transaction.atomic()`, in
batches of 25 — each event's `created_at` is its state change — while two real Celery worker processes
(production settings) deliver them: claim the delivery, sign, POST, record the attempt.

Two phases. Throughput: the events are emitted as fast as this process can (faster than the workers send
them), and deliveries/s is measured from the first to the last arrival. Delay under the target load: events
are emitted at a steady 300 events/s (TARGET_RATE) for 8 s, and per delivery the delay event.created_at →
first arrival is measured (p50, p99; also from its transaction's commit) — a burst faster than the workers
would only measure the backlog. Checked in both: every delivery arrived at least once (duplicates counted)
and ended `succeeded`. Also recorded: CPU seconds per delivery in the workers and per event in this process.
Targets (issue 7): ≥ 300 deliveries/s, p99 < 2 s under that load.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from .common import Context, Row, Workers, median, percentile

EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "2000"))
ENDPOINTS = int(os.environ.get("BENCH_WEBHOOK_ENDPOINTS", "1"))
MIN_EMIT_SECONDS = 10  # emit for at least this long, whatever the budget says
BATCH = 25  # events per transaction (a big batch holds its first events back until its commit)
WORKERS = 2
CONCURRENCY = 4  # threads per worker process; see Workers for why threads
WARM_UP = 2 * WORKERS * CONCURRENCY  # untimed
STALL_SECONDS = 30
TARGET_RATE, TARGET_P99_S = 300, 2.0
EVENT_TYPE = "order.created"
PACED_SECONDS = 8  # the delay phase: TARGET_RATE events/s for this long


class Receiver:
    """A minimal asyncio HTTP server on 127.0.0.1 (own thread): notes (webhook-id, arrival) per POST, answers 204.

    asyncio rather than a thread per connection: the sender opens a new connection for every delivery, and this
    process shares 2 cores with the workers, PostgreSQL and the event emitter.
    """

    def __init__(self) -> None:
        import asyncio

        self.arrivals: list[tuple[str, float]] = []  # list.append is atomic under the GIL
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024, reuse_address=True)
        )
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hooks"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _handle(self, reader, writer) -> None:
        try:
            while True:  # keep-alive, should a sender reuse the connection
                head = await reader.readuntil(b"\r\n\r\n")
                webhook_id, length = "", 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"webhook-id":
                        webhook_id = value.strip().decode()
                    elif name == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                self.arrivals.append((webhook_id, time.time()))
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (OSError, EOFError, ValueError):
            pass  # IncompleteReadError (EOFError) when the sender closes: the normal end
        finally:
            writer.close()

    def first_arrivals(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for delivery_id, at in list(self.arrivals):
            if delivery_id not in first or at < first[delivery_id]:
                first[delivery_id] = at
        return first

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        import asyncio

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def _setup(url: str):
    from django.db import connection
    from django_tenants.utils import tenant_context

    from tenants.services import tenant_create
    from webhooks.endpoints import webhook_endpoint_create

    tenant = tenant_create(slug=f"bench-webhooks-{uuid.uuid4().hex[:6]}", name="Bench Webhooks")
    with tenant_context(tenant):
        for n in range(ENDPOINTS):
            webhook_endpoint_create(url=f"{url}/{n}", events=[EVENT_TYPE], description=f"bench receiver {n}")
    connection.set_schema_to_public()
    return tenant


def _emit(
    tenant, count: int, start: int, deadline: float = float("inf"), rate: float | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """`count` events (fewer if the monotonic `deadline` passes) in transactions of BATCH; at `rate` events/s
    if given (each batch waits for its time), else as fast as possible.

    Returns ({event id: created_at}, {event id: its transaction's commit}) as Unix times.
    """
    from django.db import connection, transaction
    from django_tenants.utils import tenant_context

    from webhooks.events import event_emit

    created: dict[str, float] = {}
    committed: dict[str, float] = {}
    began = time.monotonic()
    with tenant_context(tenant):
        for offset in range(0, count, BATCH):
            if rate:
                time.sleep(max(0.0, began + offset / rate - time.monotonic()))
            if time.monotonic() > deadline:
                break
            batch = []
            with transaction.atomic():
                for n in range(start + offset, start + min(offset + BATCH, count)):
                    event = event_emit(type=EVENT_TYPE, data=_payload(n))
                    created[event.id] = event.created_at.timestamp()
                    batch.append(event.id)
            committed.update(dict.fromkeys(batch, time.time()))  # on-commit publishing has run too
    connection.set_schema_to_public()
    return created, committed


def _payload(n: int) -> dict:
    """About the size of a one-reward `order.created`."""
    return {
        "id": str(uuid.UUID(int=n)),
        "type": "digital",
        "status": "processing",
        "currency": "USD",
        "total_amount": "10.00",
        "external_id": f"bench-{n}",
        "rewards": [
            {
                "id": str(uuid.UUID(int=10**12 + n)),
                "status": "pending",
                "amount": "10.00",
                "currency": "USD",
                "delivery_method": "email",
                "recipient": {"name": "Bench Recipient", "email": f"r{n}@webhooks.bench.example"},
            }
        ],
    }


def _deliveries(tenant, event_ids: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """({delivery id: event id}, {status: count}) for these events."""
    from django.db import connection
    from django.db.models import Count
    from django_tenants.utils import tenant_context

    from webhooks.models import WebhookDelivery

    with tenant_context(tenant):
        qs = WebhookDelivery.objects.filter(event_id__in=event_ids)
        mapping = dict(qs.values_list("id", "event_id"))
        statuses = dict(qs.values_list("status").annotate(n=Count("id")).order_by())
    connection.set_schema_to_public()
    return mapping, statuses


def _wait(receiver: Receiver, delivery_ids: set[str] | None, expected: int, deadline: float) -> bool:
    seen, last_progress = -1, time.monotonic()
    while time.monotonic() < deadline:
        first = receiver.first_arrivals()
        got = len(first.keys() & delivery_ids) if delivery_ids is not None else len(first)
        if got >= expected:
            return True
        if got != seen:
            seen, last_progress = got, time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            return False
        time.sleep(0.05)
    return False


def run(ctx: Context) -> list[Row]:
    load_before = os.getloadavg()
    receiver = Receiver()
    tenant = _setup(receiver.url)
    workers = Workers(
        ctx,
        name="webhooks",
        count=WORKERS,
        concurrency=CONCURRENCY,
        env={"OUTBOUND_ALLOW_PRIVATE": "true", "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"},
    )
    try:
        workers.start()
        warm, _ = _emit(tenant, WARM_UP, start=0)
        if not _wait(receiver, None, WARM_UP * ENDPOINTS, time.monotonic() + 60):
            raise RuntimeError(f"warm-up webhooks were not delivered; worker log: {workers.log_tail()}")
        warm_arrivals = len(receiver.arrivals)
        # The emitter sets the pace (workers keep up with it on 2 cores): bound its time by the budget.
        emit_deadline = time.monotonic() + max(MIN_EMIT_SECONDS, (ctx.remaining() - 30) * 0.6)
        cpu_before = workers.cpu_seconds(), time.process_time()
        created, committed = _emit(tenant, EVENTS, start=WARM_UP, deadline=emit_deadline)
        count = len(created)
        emitted_s = max(created.values()) - min(created.values())
        mapping, _ = _deliveries(tenant, list(created))
        complete = _wait(receiver, set(mapping), len(mapping), time.monotonic() + max(ctx.remaining() - 10, 60))
        cpu_after = workers.cpu_seconds(), time.process_time()
        time.sleep(0.5)  # let a late duplicate show up
        # Delay phase: a steady TARGET_RATE, which the workers should keep up with.
        paced_first = len(receiver.arrivals)
        paced, paced_committed = _emit(
            tenant, TARGET_RATE * PACED_SECONDS, start=WARM_UP + EVENTS, rate=TARGET_RATE,
            deadline=time.monotonic() + PACED_SECONDS + 5,
        )  # fmt: skip
        paced_mapping, _ = _deliveries(tenant, list(paced))
        paced_complete = _wait(receiver, set(paced_mapping), len(paced_mapping), time.monotonic() + 60)
        time.sleep(0.5)
    finally:
        workers.stop()
        receiver.stop()
    load_after = os.getloadavg()

    mapping, statuses = _deliveries(tenant, list(created))
    measured = receiver.arrivals[warm_arrivals:]
    first = {d: at for d, at in receiver.first_arrivals().items() if d in mapping}
    duplicates = sum(1 for d, _ in measured if d in mapping) - len(first)
    warm_ids, _ = _deliveries(tenant, list(warm))
    paced_mapping, paced_statuses = _deliveries(tenant, list(paced))
    unknown = sum(1 for d, _ in measured if d not in mapping and d not in warm_ids and d not in paced_mapping)
    delays = [at - created[mapping[d]] for d, at in first.items()]
    missing = len(mapping) - len(first)
    problems = []
    if len(mapping) != count * ENDPOINTS:
        problems.append(f"{len(mapping)} deliveries recorded for {count} events x {ENDPOINTS} endpoint(s)")
    if missing or not complete:
        problems.append(f"{missing} deliveries never arrived")
    if statuses != {"succeeded": len(mapping)}:
        problems.append(f"delivery statuses {statuses}")
    paced_arrivals = {d: at for d, at in receiver.first_arrivals().items() if d in paced_mapping}
    if not paced_complete or len(paced_arrivals) != len(paced_mapping) or len(paced_mapping) != len(paced):
        problems.append(f"steady phase: {len(paced_arrivals)} of {len(paced)} events arrived")
    if paced_statuses != {"succeeded": len(paced_mapping)}:
        problems.append(f"steady phase delivery statuses {paced_statuses}")
    paced_duplicates = sum(1 for d, _ in receiver.arrivals[paced_first:] if d in paced_mapping) - len(paced_arrivals)
    load = f"load {load_before[0]:.1f} → {load_after[0]:.1f}"
    extra = {
        "events": count,
        "endpoints": ENDPOINTS,
        "batch": BATCH,
        "workers": WORKERS,
        "pool": f"threads x {CONCURRENCY}",
        "emit_s": emitted_s,
        "statuses": statuses,
        "duplicates": duplicates,
        "unexpected_requests": unknown,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    if len(first) < 2:
        verdict = "FAILED: " + ", ".join(problems)
        return [Row("webhooks: deliveries/s to a local receiver", None, "deliveries/s", "", verdict, extra)]
    elapsed = max(first.values()) - min(first.values())
    rate = len(first) / elapsed
    emit_rate = count / max(max(committed.values()) - min(created.values()), 0.001)
    lag = max(first.values()) - max(committed.values())  # last arrival after the last commit
    p50, p99 = median(delays), percentile(delays, 99)
    worker_cpu = (cpu_after[0] - cpu_before[0]) if cpu_before[0] is not None and cpu_after[0] is not None else None
    bench_cpu = cpu_after[1] - cpu_before[1]
    cpu = (f"worker CPU {worker_cpu / len(first) * 1000:.1f} ms/delivery, " if worker_cpu is not None else "") + (
        f"emitter + receiver CPU {bench_cpu / count * 1000:.1f} ms/event"
    )
    if lag < 1.0:
        bound = (
            f"workers kept pace with the emitter ({emit_rate:.0f} events/s, last arrival {lag * 1000:.0f} ms after "
            "the last commit): the producer, sharing the 2 cores, set the rate"
        )
    else:
        bound = f"workers fell behind the emitter ({emit_rate:.0f} events/s): backlog drained {lag:.1f} s after it"
    verdict = "FAILED: " + ", ".join(problems) if problems else "every event arrived"
    delays_paced = [at - paced[paced_mapping[d]] for d, at in paced_arrivals.items()]
    after_commit_paced = [at - paced_committed[paced_mapping[d]] for d, at in paced_arrivals.items()]
    paced_rate = len(paced) / max(max(paced_committed.values()) - min(paced.values()), 0.001)
    p50_paced, p99_paced = (
        (median(delays_paced), percentile(delays_paced, 99)) if delays_paced else (float("nan"), float("nan"))
    )
    extra.update(
        elapsed_s=elapsed,
        emit_events_per_s=emit_rate,
        last_arrival_after_last_commit_s=lag,
        worker_cpu_s=worker_cpu,
        bench_process_cpu_s=bench_cpu,
    )
    return [
        Row(
            f"webhooks: deliveries/s to a local receiver, {WORKERS} workers",
            round(rate, 1),
            "deliveries/s",
            f"target ≥ {TARGET_RATE}: {'met' if rate >= TARGET_RATE else 'MISSED'}",
            f"{verdict}, {duplicates} duplicates; {count} events x {ENDPOINTS} endpoint(s) emitted as fast as "
            f"possible; {bound} (delay in that burst: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, mostly "
            f"backlog); {cpu}; threads pool x{CONCURRENCY} per worker; {load}",
            extra,
        ),
        Row(
            f"webhooks: delay event created → delivered, steady {TARGET_RATE} events/s",
            round(p99_paced * 1000) if delays_paced else None,
            "ms p99",
            f"target < {TARGET_P99_S * 1000:.0f} ms: {'met' if p99_paced < TARGET_P99_S else 'MISSED'}; "
            f"p50 {p50_paced * 1000:.0f} ms",
            f"{len(paced)} events in {PACED_SECONDS} s ({paced_rate:.0f} events/s reached), {paced_duplicates} "
            f"duplicates; from its batch's commit (after the {BATCH} events of one transaction): p50 "
            f"{median(after_commit_paced) * 1000:.0f} ms, p99 {percentile(after_commit_paced, 99) * 1000:.0f} ms"
            if delays_paced
            else "; ".join(problems),
            {"delays_s": delays_paced, "after_commit_s": after_commit_paced, "burst_delays_s": delays},
        ),
    ]
