"""The drain: send a schema's due deliveries in batches, and record what happened.

A drain claims due deliveries in one statement (`sending` with a lease, SKIP LOCKED), loads what they need
once per batch, sends them concurrently over kept-alive connections (webhooks.sending) and records attempts
and outcomes set-based, batch after batch, within a time budget; no transaction stays open across the network
calls, and two drains never send the same attempt (the claim token decides whose outcome counts).

One unit on purpose: claim, prepare, record and release share the claim token, the lease and the SQL that
guards them, and the drain loop interleaves them; split apart, each piece would be half of a protocol.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.db import connection
from core.metrics import WEBHOOK_ATTEMPTS

from . import outbound, publish
from .endpoints import endpoint_auto_disable
from .models import DeliveryStatus, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .retries import attempt_outcome
from .selectors import signing_secrets_by_endpoint
from .sending import Send, executor, send_lane
from .signing import signing_keys

logger = logging.getLogger(__name__)


def _sending_lease() -> timedelta:
    """How long a claim (`sending`) lasts before another drain may take the delivery over.

    By default past the task's hard time limit, which no live worker outlives. WEBHOOK_SENDING_LEASE_SECONDS
    (test settings) shortens it so a delivery held by a killed worker is recovered within seconds; a lease
    shorter than an attempt only risks a duplicate send, never a lost one (the claim token decides the outcome).
    """
    seconds = getattr(settings, "WEBHOOK_SENDING_LEASE_SECONDS", None)
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30 if seconds is None else float(seconds))


# How early (seconds) a drain may send a retry whose time has almost come: a countdown can fire a hair early.
DUE_TOLERANCE_SECONDS = 0.25
# How often a drain writes the outcomes of the requests answered meanwhile.
FLUSH_SECONDS = 0.2

_CLAIM_SQL = """
UPDATE {table} AS d
SET status = 'sending', claim_token = %(token)s, locked_until = %(until)s, attempt_count = d.attempt_count + 1
FROM (
    SELECT id FROM {table}
    WHERE status IN ('pending', 'sending')
      AND ((status = 'pending' AND next_attempt_at <= %(due)s) OR (status = 'sending' AND locked_until <= %(now)s))
      {only}
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS picked
WHERE d.id = picked.id
RETURNING d.id, d.event_id, d.endpoint_id, d.attempt_count, d.retry_index, d.next_attempt_at
"""

# A claimed delivery, as _CLAIM_SQL returns it: id, event id, endpoint id, attempt number, retry index, due time.
ClaimedRow = tuple[str, str, str, int, int, datetime]

# The outcome of a batch, one row per delivery still held by this claim: set-based.
_OUTCOME_SQL = """
UPDATE {table} AS d
SET status = v.status, claim_token = '', locked_until = NULL, last_attempt_at = %(now)s,
    last_status_code = v.code, last_error = v.error, retry_index = v.retry_index,
    next_attempt_at = COALESCE(v.next_attempt_at, d.next_attempt_at), enqueued_at = v.enqueued_at,
    succeeded_at = COALESCE(v.succeeded_at, d.succeeded_at)
FROM unnest(%(ids)s::text[], %(statuses)s::text[], %(codes)s::int[], %(errors)s::text[], %(retries)s::int[],
            %(nexts)s::timestamptz[], %(enqueued)s::timestamptz[], %(succeeded)s::timestamptz[])
     AS v(id, status, code, error, retry_index, next_attempt_at, enqueued_at, succeeded_at)
WHERE d.id = v.id AND d.claim_token = %(token)s
RETURNING d.id
"""

# Claims given back unsent (the drain's time ran out): as they were, minus the attempt not made.
_RELEASE_SQL = """
UPDATE {table} SET status = 'pending', claim_token = '', locked_until = NULL, attempt_count = attempt_count - 1
WHERE id = ANY(%(ids)s) AND claim_token = %(token)s
"""


def _claim(
    *,
    token: str,
    limit: int,
    only: list[str] | None = None,
    exclude: list[str] | None = None,
    tolerance: float = DUE_TOLERANCE_SECONDS,
) -> list[ClaimedRow]:
    """Claim up to `limit` due deliveries in one statement (SKIP LOCKED): of the ids in `only` if given, not
    of the endpoints in `exclude`."""
    now = timezone.now()
    table = WebhookDelivery._meta.db_table
    where = ("AND id = ANY(%(only)s) " if only is not None else "") + (
        "AND endpoint_id <> ALL(%(exclude)s)" if exclude else ""
    )
    sql = _CLAIM_SQL.format(table=table, only=where)
    params: dict[str, Any] = {
        "token": token,
        "until": now + _sending_lease(),
        "due": now + timedelta(seconds=tolerance),
        "now": now,
        "limit": limit,
        "only": only,
        "exclude": exclude or [],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[ClaimedRow] = cursor.fetchall()
    rows.sort(key=lambda row: (row[5], row[0]))  # oldest due first, so each endpoint gets them in order
    return rows


def _prepare(rows: list[ClaimedRow], *, token: str) -> list[Send]:
    """Load what the claimed deliveries need, once per batch: events, endpoints, decrypted signing secrets."""
    event_ids = {row[1] for row in rows}
    endpoint_ids = {row[2] for row in rows}
    endpoints = {
        pk: (url, enabled)
        for pk, url, enabled in WebhookEndpoint.objects.filter(pk__in=endpoint_ids).values_list("id", "url", "enabled")
    }
    keys = {
        endpoint_id: signing_keys(secrets_)
        for endpoint_id, secrets_ in signing_secrets_by_endpoint(endpoint_ids=endpoint_ids).items()
    }
    bodies = {
        pk: json.dumps(
            Event(id=pk, type=type_, created_at=created_at, data=data).payload(),
            cls=DjangoJSONEncoder,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        for pk, type_, created_at, data in Event.objects.filter(pk__in=event_ids).values_list(
            "id", "type", "created_at", "data"
        )
    }
    sends, disabled = [], []
    for delivery_id, event_id, endpoint_id, number, retry_index, _ in rows:
        url, enabled = endpoints.get(endpoint_id, ("", False))
        if not enabled:
            disabled.append(delivery_id)
            continue
        sends.append(
            Send(
                delivery_id=delivery_id,
                endpoint_id=endpoint_id,
                number=number,
                retry_index=retry_index,
                url=url,
                body=bodies[event_id],
                keys=keys.get(endpoint_id, ()),
            )
        )
    if disabled:
        WebhookDelivery.objects.filter(pk__in=disabled, claim_token=token).update(
            status=DeliveryStatus.FAILED,
            last_error="The endpoint is disabled.",
            claim_token="",
            locked_until=None,
            attempt_count=F("attempt_count") - 1,
        )
    return sends


def _answer(send: Send) -> outbound.Response:
    """A send's response: _record is only given sends that have one (see _deliver and _flush)."""
    assert send.response is not None
    return send.response


def _record(sends: list[Send], *, token: str) -> dict[str, WebhookAttempt]:
    """Attempts (one bulk insert) and outcomes (one set-based UPDATE), in one transaction; then the log lines.

    An attempt whose claim was taken over (lease expired) is recorded, but the state belongs to the new owner.
    """
    now = timezone.now()
    outcomes = {
        send.delivery_id: attempt_outcome(response=_answer(send), retry_index=send.retry_index, now=now)
        for send in sends
    }
    table = WebhookDelivery._meta.db_table
    attempts: dict[str, WebhookAttempt] = {}
    retry_delays: list[float] = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            columns: dict[str, list[Any]] = {  # one array of database values per column
                "ids": [],
                "statuses": [],
                "codes": [],
                "errors": [],
                "retries": [],
                "nexts": [],
                "enqueued": [],
                "succeeded": [],
            }
            for delivery_id, outcome in outcomes.items():
                columns["ids"].append(delivery_id)
                columns["statuses"].append(str(outcome["status"]))
                columns["codes"].append(outcome["code"])
                columns["errors"].append(outcome["error"])
                columns["retries"].append(outcome["retry_index"])
                columns["nexts"].append(outcome["next_attempt_at"])
                columns["enqueued"].append(outcome["enqueued_at"])
                columns["succeeded"].append(outcome["succeeded_at"])
            cursor.execute(_OUTCOME_SQL.format(table=table), {**columns, "now": now, "token": token})
            owned = {row[0] for row in cursor.fetchall()}
            existing = set(owned)
            others = [send.delivery_id for send in sends if send.delivery_id not in owned]
            if others:  # taken over by another drain, or deleted with its endpoint
                cursor.execute(f"SELECT id FROM {table} WHERE id = ANY(%s) FOR KEY SHARE", [others])
                existing.update(row[0] for row in cursor.fetchall())
        for send in sends:
            if send.delivery_id not in existing:
                continue
            outcome = outcomes[send.delivery_id]
            attempts[send.delivery_id] = WebhookAttempt(
                delivery_id=send.delivery_id,
                number=send.number,
                url=send.url,
                request_headers=send.headers,
                response_status=_answer(send).status,
                response_excerpt=_answer(send).body_excerpt.decode("utf-8", errors="replace"),
                duration_ms=_answer(send).duration_ms,
                error=outcome["attempt_error"],
                succeeded=outcome["succeeded"],
                created_at=now,
            )
        WebhookAttempt.objects.bulk_create(attempts.values())
        # The endpoints' failure runs: the last outcome per endpoint in this batch decides.
        last: dict[str, Send] = {}
        for send in sends:
            if send.delivery_id in owned:
                last[send.endpoint_id] = send
        recovered = [e for e, s in last.items() if outcomes[s.delivery_id]["succeeded"]]
        failing = [e for e, s in last.items() if not outcomes[s.delivery_id]["succeeded"]]
        if recovered:
            WebhookEndpoint.objects.filter(pk__in=recovered).exclude(failing_since=None).update(failing_since=None)
        if failing:
            WebhookEndpoint.objects.filter(pk__in=failing, failing_since=None).update(failing_since=now)
            disable_after = timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS)
            for send in sends:
                if send.delivery_id in owned and _answer(send).status == 410:
                    endpoint_auto_disable(
                        endpoint_id=send.endpoint_id, reason=f"The receiver at {send.url} answered 410 Gone."
                    )
            for endpoint_id in failing:
                # Disabling fails the endpoint's pending deliveries, including those just set to retry.
                endpoint_auto_disable(
                    endpoint_id=endpoint_id,
                    reason=f"Every attempt failed for {disable_after.days} days.",
                    only_if_failing_before=now - disable_after,
                )
        retry_delays = [
            outcomes[d]["delay"]
            for d in owned
            if outcomes[d]["enqueued_at"] is not None and outcomes[d]["status"] == DeliveryStatus.PENDING
        ]
        if retry_delays:
            publish.drain_on_commit(
                [d for d in owned if outcomes[d]["enqueued_at"] is not None], countdown=max(0.0, min(retry_delays))
            )
    for attempt in attempts.values():  # recorded ones only (committed): the failure rate's numerator and base
        WEBHOOK_ATTEMPTS.labels("succeeded" if attempt.succeeded else "failed").inc()
    for send in sends:
        outcome = outcomes[send.delivery_id]
        (logger.info if outcome["succeeded"] else logger.warning)(
            "webhook attempt",
            extra={
                "event": "webhook.attempt",
                "delivery": send.delivery_id,
                "attempt": send.number,
                "status": _answer(send).status,
                "error": outcome["attempt_error"][:200],
                "duration_ms": _answer(send).duration_ms,
                "outcome": outcome["status"] if send.delivery_id in owned else "taken over",
            },
        )
    return attempts


def _release(sends: list[Send], *, token: str) -> None:
    if sends:
        with connection.cursor() as cursor:
            cursor.execute(
                _RELEASE_SQL.format(table=WebhookDelivery._meta.db_table),
                {"ids": [send.delivery_id for send in sends], "token": token},
            )


def _deliver(rows: list[ClaimedRow], *, token: str, deadline: float) -> dict[str, WebhookAttempt]:
    """Send the claimed deliveries and record what happened; those not sent before the deadline go back."""
    lease_end = time.monotonic() + _sending_lease().total_seconds()
    sends = _prepare(rows, token=token)
    if not sends:
        return {}
    send_lane(deque(sends), deadline, lease_end)
    done = [send for send in sends if send.response is not None]
    _release([send for send in sends if send.response is None], token=token)
    return _record(done, token=token) if done else {}


def webhook_delivery_attempt(*, delivery_id: str) -> WebhookAttempt | None:
    """Make the next attempt of one delivery if it is due and nobody else is making it; record the outcome.

    Safe to run twice or concurrently: a delivery that is done, not due, or claimed by another worker is
    left alone (returns None). Drains do the same for many deliveries at once.
    """
    token = uuid.uuid4().hex
    # A countdown may fire a hair early (clock skew between hosts); a real early duplicate waits.
    rows = _claim(token=token, limit=1, only=[delivery_id], tolerance=2.0)  # leased from about now
    if not rows:
        return None
    attempts = _deliver(rows, token=token, deadline=time.monotonic() + settings.WEBHOOK_TIMEOUT_SECONDS)
    return attempts.get(delivery_id)


@dataclass
class _Group:
    """One endpoint's sends from one claim, being sent by its lanes (at most WEBHOOK_ENDPOINT_CONCURRENCY)."""

    endpoint_id: str
    token: str
    sends: list[Send]
    lanes: list[Future[None]]

    def done(self) -> bool:
        return all(lane.done() for lane in self.lanes)


def _start(sends: list[Send], *, token: str, deadline: float, lease_end: float) -> list[_Group]:
    by_endpoint: dict[str, list[Send]] = {}
    for send in sends:
        by_endpoint.setdefault(send.endpoint_id, []).append(send)
    groups = []
    for endpoint_id, mine in by_endpoint.items():
        queue = deque(mine)
        lanes = [
            executor().submit(send_lane, queue, deadline, lease_end)
            for _ in range(min(len(mine), settings.WEBHOOK_ENDPOINT_CONCURRENCY))
        ]
        groups.append(_Group(endpoint_id=endpoint_id, token=token, sends=mine, lanes=lanes))
        with _busy_lock:
            _busy[endpoint_id] += 1
    return groups


# Endpoints some drain in this process is sending to: other drains here leave them alone, so an endpoint gets
# at most WEBHOOK_ENDPOINT_CONCURRENCY requests at a time per worker process, and no drain claims deliveries
# that would only wait for a lane.
_busy_lock = threading.Lock()
_busy: Counter[str] = Counter()
# Held from a claim until its endpoints are marked busy, so two drains in one process (threads pool) never
# claim the same endpoint at once.
_claim_lock = threading.Lock()


def _busy_endpoints() -> list[str]:
    with _busy_lock:
        return [endpoint_id for endpoint_id, count in _busy.items() if count > 0]


def _flush(group: _Group, *, final: bool) -> int:
    """Record the group's sends answered since the last flush; when it is done, give back what was not sent."""
    ready = [send for send in group.sends if send.response is not None and not send.recorded]
    for send in ready:
        send.recorded = True
    made = len(_record(ready, token=group.token)) if ready else 0
    if final:
        for lane in group.lanes:
            lane.result()  # a lane's own bug surfaces here (its unsent deliveries were released first)
    return made


def _close(group: _Group) -> int:
    try:
        made = _flush(group, final=False)
        _release([send for send in group.sends if send.response is None], token=group.token)
        return made + _flush(group, final=True)
    finally:
        with _busy_lock:
            _busy[group.endpoint_id] -= 1
            if _busy[group.endpoint_id] <= 0:
                del _busy[group.endpoint_id]


def webhook_deliveries_drain(*, budget_seconds: float | None = None) -> int:
    """Send the current schema's due deliveries in batches until none is due or the time budget is spent.

    A claim is one statement: up to WEBHOOK_DRAIN_BATCH due deliveries (SKIP LOCKED: concurrent drains take
    different ones) of endpoints no drain in this process is sending to. Their events, endpoints and secrets
    are loaded once; each endpoint's requests go out on up to WEBHOOK_ENDPOINT_CONCURRENCY lanes over
    kept-alive connections; every FLUSH_SECONDS the attempts and outcomes answered meanwhile are written with
    one insert and one update; when an endpoint's lanes are done the drain claims again. So a slow receiver
    holds its own deliveries only, not the others'; what a claim could not start within half the lease (or
    the budget) goes back, and no request runs past the lease. A full claim publishes another drain (other
    workers help); a spent budget re-publishes this one (tasks stay short); at the end, a drain is published
    for the next retry due within WEBHOOK_COUNTDOWN_MAX_SECONDS. Returns how many attempts it made.
    """
    schema_name = connection.schema_name
    publish.drain_flag_clear(schema_name)  # from now on a commit publishes a new drain: we may have claimed already
    budget = settings.WEBHOOK_DRAIN_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    batch = settings.WEBHOOK_DRAIN_BATCH
    made = 0
    groups: list[_Group] = []
    claim = True
    flushed = time.monotonic()
    try:
        while True:
            if claim and time.monotonic() < deadline:
                token = uuid.uuid4().hex
                lease = _sending_lease().total_seconds()
                claimed_at = time.monotonic()  # before the claim: the lease ends no sooner than this + lease
                with _claim_lock:
                    rows = _claim(token=token, limit=batch, exclude=_busy_endpoints())
                    if rows:
                        # Sends not started within half the lease go back; none runs past the lease.
                        until = min(deadline, claimed_at + lease / 2)
                        sends = _prepare(rows, token=token)
                        groups += _start(sends, token=token, deadline=until, lease_end=claimed_at + lease)
                if len(rows) == batch:
                    publish.publish_drain(schema_name)  # more is due: another worker can take the next batch meanwhile
                if rows:
                    continue  # perhaps more, for endpoints not in flight yet
                claim = False
            if not groups:
                break
            # Outcomes are written every FLUSH_SECONDS, not when a whole claim is done: a killed worker
            # leaves little sent-but-unrecorded (sent again), and no claim outlives its lease.
            running = [lane for group in groups for lane in group.lanes if not lane.done()]
            if running:  # (waiting on finished lanes too would return at once: a busy loop)
                wait(running, max(0.0, FLUSH_SECONDS - (time.monotonic() - flushed)), FIRST_COMPLETED)
            flush = time.monotonic() - flushed >= FLUSH_SECONDS
            for group in list(groups):
                if group.done():
                    groups.remove(group)
                    made += _close(group)
                    claim = True
                elif flush:
                    made += _flush(group, final=False)
            if flush:
                flushed = time.monotonic()
    finally:
        for group in groups:  # only on an error above: still record what was sent, and free every endpoint
            try:
                wait(group.lanes)
                made += _close(group)
            except Exception:  # the error above is the one raised; this group's claim runs out with its lease
                logger.exception("webhook drain could not close a claim", extra={"event": "webhook.drain_close_failed"})
    if time.monotonic() >= deadline:
        publish.publish_drain(schema_name)  # whatever is left, in a new task
    _publish_next_retry(schema_name)
    return made


def _publish_next_retry(schema_name: str) -> None:
    """A drain for the earliest pending delivery due soon (the retries of this and other drains)."""
    now = timezone.now()
    window = timedelta(seconds=settings.WEBHOOK_COUNTDOWN_MAX_SECONDS)
    next_at = (
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__gt=now, next_attempt_at__lte=now + window
        )
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if next_at is not None:
        publish.publish_drain(schema_name, countdown=max(0.0, (next_at - now).total_seconds()))
