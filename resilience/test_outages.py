"""Data stores failing under a steady stream of orders, on the private stack (its own PostgreSQL and Redis).

- Redis stopped for 30 s (and restarted empty: every queued task is lost): the API keeps accepting orders
  or refuses with 503 problem+json, never a 500, never a hung request; after Redis returns, the sweepers
  re-publish the lost work and every accepted reward is emailed exactly once and every order.created
  webhook reaches the receiver.
- PostgreSQL restarted (fast shutdown: sessions cut mid-transaction) while orders and deliveries are in
  flight: requests get 201 or 503 problem+json, never a 500; web and worker reconnect on their own; new
  orders succeed; everything accepted is delivered.

Clients retry a 503 with the same Idempotency-Key, as the API asks, so every request ends with a definite
answer; the database must then hold exactly the orders answered 201, and the ledger must balance.
"""

from __future__ import annotations

import collections
import http.client
import itertools
import json
import os
import threading
import time
import uuid

import pytest

from testsupport.waiting import wait_for

from .load import Clients, Summary, order_body

pytestmark = pytest.mark.resilience

CLIENTS = 6
PAUSE = 0.1  # seconds between a client's requests: a steady stream, not a flood


class Stream:
    """Clients sending orders (unique keys) until stopped."""

    def __init__(self, stack, tenant: dict, domain: str) -> None:
        self.tenant = tenant
        self.domain = domain
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.clients = Clients(stack.port, tenant["key"], self._next, retry_unavailable_for=90, pause=PAUSE)

    def _next(self):
        if self._stop.is_set():
            return None
        key = uuid.uuid4().hex
        return key, order_body(self.tenant["product_id"], f"k{key}@{self.domain}"), False

    def start(self) -> Stream:
        self.started = time.monotonic()
        self.clients.start(CLIENTS)
        return self

    def stop(self):
        self._stop.set()
        return self.clients.join(timeout=180)


def steady_stream(stack, webhook_receiver) -> Stream:
    """A funded tenant with a webhook endpoint, and its order stream running for 8 s already."""
    tenant = stack.probe("setup", "--funds", "100000.00", "--webhook", webhook_receiver.url)
    stream = Stream(stack, tenant, f"{tenant['slug']}.example.com").start()
    time.sleep(8)
    return stream


def readyz(port: int) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/readyz")
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def _text(raw: str) -> str:
    import email

    parsed = email.message_from_string(raw)
    parts = [part.get_payload(decode=True) or b"" for part in parsed.walk() if not part.is_multipart()]
    return "\n".join(p.decode("utf8", "replace") for p in parts)


def verify(
    stack, tenant: dict, domain: str, results, smtp_server, webhook_receiver, summary: Summary, *, allow_email_repeats
) -> None:
    """Every request answered 201 in the end; the database holds exactly those; all delivered once."""
    statuses = collections.Counter(r.status for r in results)
    assert statuses.keys() <= {201}, f"final answers: {statuses} ({[r.body for r in results if r.status != 201][:3]})"
    unavailable = [u for r in results for u in r.unavailable]
    for answer in unavailable:  # the refusals on the way were clean problem+json, marked retryable
        assert answer["content_type"].startswith("application/problem+json"), answer
        assert answer["body"]["status"] == 503 and answer["body"]["retryable"] is True, answer
    slowest = max(r.slowest for r in results)
    assert slowest < 30, f"a request took {slowest:.1f} s"
    accepted = {r.key: r.body["id"] for r in results}
    report = stack.probe("inspect", "--slug", tenant["slug"])["live"]
    assert report["violations"] == []
    assert report["order_ids"] == sorted(accepted.values()), "an order the client never saw accepted is stored"
    assert report["recipients"] == sorted(f"k{key}@{domain}" for key in accepted)
    assert report["orders_without_rewards"] == report["rewards_without_hold"] == report["holds_without_reward"] == 0

    drain_started = time.monotonic()

    def delivered():
        rows = dict(stack.sql(f'SELECT status, count(*) FROM "{tenant["schema"]}".orders_reward GROUP BY status'))
        return rows if rows.get("delivered") == len(accepted) else False

    wait_for(delivered, timeout=240, interval=2, message="every accepted reward delivered")
    order_ids = set(accepted.values())

    def webhooks_arrived():
        seen = {data_id for _, kind, data_id in webhook_receiver.snapshot() if kind == "order.created"}
        return (order_ids <= seen) or False

    wait_for(webhooks_arrived, timeout=240, interval=2, message="an order.created webhook for every order")
    drained = time.monotonic() - drain_started
    mail = collections.Counter(to for m in list(smtp_server.messages) for to in m["to"] if to.endswith(domain))
    assert set(mail) == {f"k{key}@{domain}" for key in accepted}
    # Email is at least once: a message sent just before the database went away, whose "delivered" mark
    # could not commit, is sent again when the reward is retried. It must then be the same gift: the code
    # is stored (and the hold captured) before the first send, so the repeat carries the same code.
    email_duplicates = sum(n - 1 for n in mail.values())
    bodies = collections.defaultdict(set)
    for message in list(smtp_server.messages):
        for to in message["to"]:
            if mail.get(to, 0) > 1:
                bodies[to].add(_text(message["data"]))
    assert all(len(texts) == 1 for texts in bodies.values()), "a reward was emailed twice with different contents"
    if not allow_email_repeats:
        assert email_duplicates == 0, f"{email_duplicates} rewards emailed twice"
    delivered_events = dict(
        stack.sql(
            f'SELECT e.reward_id, count(*) FROM "{tenant["schema"]}".orders_rewardevent e '
            "WHERE e.to_status = 'delivered' GROUP BY e.reward_id"
        )
    )
    assert len(delivered_events) == len(accepted) and set(delivered_events.values()) == {1}
    hooks = [(wid, data_id) for wid, kind, data_id in webhook_receiver.snapshot() if data_id in order_ids]
    hook_repeats = len(hooks) - len({wid for wid, _ in hooks})  # at-least-once: same webhook-id again
    final = stack.probe("inspect", "--slug", tenant["slug"])["live"]
    assert final["violations"] == []
    assert final["holds"] == {"captured": len(accepted)}
    stack.assert_alive()
    summary.add(
        f"{len(results)} orders accepted (201), 0 lost, 0 half-written; {len(unavailable)} 503 answers on the way "
        f"(all problem+json, retried with the same key), statuses seen {dict(statuses)}, no 5xx other than 503"
    )
    summary.add(f"slowest single request {slowest:.1f} s")
    summary.add(
        f"rewards delivered {len(delivered_events)} (one 'delivered' transition each, one code, hold captured "
        f"once); emails: {len(mail)} recipients, {email_duplicates} repeated (same code); order.created webhooks "
        f"{len({wid for wid, _ in hooks})} (re-sent same webhook-id: {hook_repeats}); drained {drained:.0f} s "
        "after the load stopped; ledger violations 0"
    )


def test_redis_stopped_for_30_seconds_while_orders_arrive(healthy_stack, smtp_server, webhook_receiver):
    stack = healthy_stack
    load_before = os.getloadavg()
    stream = steady_stream(stack, webhook_receiver)
    tenant, domain = stream.tenant, stream.domain
    stopped_at = time.monotonic()
    stack.redis.stop()
    try:
        time.sleep(3)
        ready_status, ready = readyz(stack.port)
        assert ready_status == 503 and ready["checks"]["broker"]["ok"] is False, ready
        time.sleep(30 - (time.monotonic() - stopped_at))
    finally:
        stack.redis.start()
    back_at = time.monotonic()
    time.sleep(12)
    results = stream.stop()
    during = [r for r in results if stopped_at <= r.started < back_at]
    assert during, "no order was sent while Redis was down"
    summary = Summary("Redis stopped for 30 s (restarted empty) while orders arrive")
    summary.add(
        f"{CLIENTS} clients; {len(during)} orders sent while Redis was down, "
        f"{sum(1 for r in during if not r.unavailable)} of them accepted on the first try; "
        f"/readyz answered {ready_status} (broker: {ready['checks']['broker']['detail']}); "
        f"load avg {load_before[0]:.1f}"
    )
    verify(stack, tenant, domain, results, smtp_server, webhook_receiver, summary, allow_email_repeats=False)
    summary.print()


def test_postgres_restarted_while_orders_and_deliveries_are_in_flight(healthy_stack, smtp_server, webhook_receiver):
    stack = healthy_stack
    load_before = os.getloadavg()
    stream = steady_stream(stack, webhook_receiver)
    tenant, domain = stream.tenant, stream.domain
    restart_started = time.monotonic()
    stack.pg.stop("fast")  # terminates every session, mid-transaction or not
    time.sleep(3)  # down for a few seconds: requests arrive meanwhile
    stack.pg.start()
    restarted = time.monotonic()
    time.sleep(10)
    results = stream.stop()
    during = [r for r in results if restart_started <= r.started < restarted]
    after = [r for r in results if r.started >= restarted + 5]
    assert after and all(not r.unavailable for r in after), "orders after the restart did not succeed at once"
    summary = Summary("PostgreSQL restarted (fast shutdown, down 3 s) while orders and deliveries are in flight")
    summary.add(
        f"{CLIENTS} clients; {len(during)} orders sent while it was down or restarting; {len(after)} orders "
        f"from 5 s after the restart, all accepted at the first try; load avg {load_before[0]:.1f}"
    )
    verify(stack, tenant, domain, results, smtp_server, webhook_receiver, summary, allow_email_repeats=True)
    summary.print()
