"""10,000 order requests from many concurrent clients against funds for exactly 5,000 rewards.

Through a production-like server (gunicorn gthread, production settings, DEBUG off) on the private stack:
exactly 5,000 orders are accepted, every other request is refused with 402 `insufficient_funds`
problem+json, nothing answers 5xx, replays of an Idempotency-Key never charge twice, the balance ends at
exactly 0, every accepted reward is emailed exactly once and a refused request leaves no row behind.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid

import pytest

from testsupport.waiting import wait_for

from .load import Clients, Summary, order_body

pytestmark = pytest.mark.resilience

REQUESTS = int(os.environ.get("RESILIENCE_OVERDRAW_REQUESTS", "10000"))
FUNDED = REQUESTS // 2
CLIENTS = 48
REWARD = "10.00"


def test_overdraw_10000_requests_against_funds_for_5000(healthy_stack, smtp_server):
    stack = healthy_stack
    tenant = stack.probe("setup", "--funds", f"{FUNDED * 10}.00")
    domain = f"{tenant['slug']}.example.com"
    keys = [uuid.uuid4().hex for _ in range(REQUESTS)]
    bodies = {key: order_body(tenant["product_id"], f"k{key}@{domain}") for key in keys}
    # Every 100th key is sent twice back to back (two clients at once), and every 50th again at the end.
    queue: collections.deque = collections.deque()
    for position, key in enumerate(keys):
        queue.append((key, bodies[key], False))
        if position % 100 == 0:
            queue.append((key, bodies[key], True))
    queue.extend((key, bodies[key], True) for key in keys[::50])
    lock = threading.Lock()

    def next_job():
        with lock:
            return queue.popleft() if queue else None

    cpu_before = os.times()
    stack_cpu_before = stack.cpu_seconds()
    load_before = os.getloadavg()
    started = time.monotonic()
    results = Clients(stack.port, tenant["key"], next_job).start(CLIENTS).join(timeout=900)
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()

    by_status = collections.Counter(r.status for r in results)
    assert by_status.keys() <= {201, 402}, f"unexpected statuses: {by_status}"
    per_key: dict[str, list] = collections.defaultdict(list)
    for result in results:
        per_key[result.key].append(result)
    accepted = {key for key, rs in per_key.items() if any(r.status == 201 for r in rs)}
    refused = set(keys) - accepted
    assert len(per_key) == REQUESTS
    assert len(accepted) == FUNDED, f"{len(accepted)} accepted for funds covering {FUNDED}"
    for key in accepted:  # a replay answers the first outcome: the same order, never a second charge
        assert {r.status for r in per_key[key]} == {201}
        assert len({r.body["id"] for r in per_key[key]}) == 1
    for key in refused:
        for r in per_key[key]:
            assert r.content_type.startswith("application/problem+json")
            assert r.body["code"] == "insufficient_funds" and r.body["status"] == 402
    replays = sum(1 for r in results if r.replay)

    # The database holds exactly the accepted orders, each with its reward and hold; nothing else.
    accepted_ids = sorted(next(r.body["id"] for r in per_key[key] if r.status == 201) for key in accepted)
    report = stack.probe("inspect", "--slug", tenant["slug"])["live"]
    assert report["violations"] == []
    assert report["order_ids"] == accepted_ids
    assert report["recipients"] == sorted(f"k{key}@{domain}" for key in accepted)
    assert report["idempotency_records"] == FUNDED
    assert sum(report["holds"].values()) == FUNDED
    assert report["orders_without_rewards"] == report["rewards_without_hold"] == report["holds_without_reward"] == 0
    assert report["available"] in ("0", "0.0000", "0E-4") or float(report["available"]) == 0

    # Every accepted reward is delivered (emailed) exactly once; no refused recipient hears anything.
    def all_delivered():
        rows = dict(stack.sql(f'SELECT status, count(*) FROM "{tenant["schema"]}".orders_reward GROUP BY status'))
        return rows if rows.get("delivered") == FUNDED else False

    delivery_started = time.monotonic()
    wait_for(all_delivered, timeout=300, interval=2, message="every accepted reward delivered")
    mail = collections.Counter(to for m in list(smtp_server.messages) for to in m["to"] if to.endswith(domain))
    delivery_s = time.monotonic() - delivery_started
    final = stack.probe("inspect", "--slug", tenant["slug"])["live"]
    assert final["violations"] == []
    assert final["holds"] == {"captured": FUNDED}
    assert float(final["available"]) == 0 and float(final["held"]) == 0
    assert set(mail) == {f"k{key}@{domain}" for key in accepted}
    duplicates = sum(n - 1 for n in mail.values())
    assert duplicates == 0
    stack.assert_alive()

    cpu = os.times()
    stack_cpu = {name: used - stack_cpu_before[name] for name, used in stack.cpu_seconds().items()}
    client_cpu = cpu.user - cpu_before.user + cpu.system - cpu_before.system
    summary = Summary("overdraw: 10,000 order requests vs funds for 5,000")
    summary.add(
        f"{len(results)} requests ({REQUESTS} unique keys + {replays} replays) from {CLIENTS} clients in "
        f"{elapsed:.1f} s ({len(results) / elapsed:.0f} req/s; 1-min load avg {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after, on {os.cpu_count()} CPUs)"
    )
    summary.add(
        f"accepted {len(accepted)} (201), refused {len(refused)} (402 insufficient_funds), "
        f"statuses {dict(by_status)}, no 5xx"
    )
    p99 = sorted(r.seconds for r in results)[int(len(results) * 0.99)]
    summary.add(f"latency p99 {p99 * 1000:.0f} ms; replays: {replays}, all answered with the first outcome")
    summary.add(f"balance available {final['available']}, holds {final['holds']}, ledger violations 0")
    summary.add(
        f"rewards delivered {len(mail)} (emails), duplicates {duplicates}; delivery drained {delivery_s:.0f} s "
        "after the load stopped"
    )
    total_cpu = sum(stack_cpu.values()) + client_cpu
    summary.add(
        "CPU s (until drained): "
        + ", ".join(f"{name} {used:.0f}" for name, used in stack_cpu.items())
        + f", clients+SMTP sink {client_cpu:.0f}; total {total_cpu:.0f} CPU s = "
        f"{total_cpu / len(results) * 1000:.1f} ms per request (>= {total_cpu / (os.cpu_count() or 1):.0f} s wall "
        "on an otherwise idle machine)"
    )
    summary.print()
