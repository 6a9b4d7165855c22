"""Writes for webhooks: the event outbox (`event_emit`), endpoints and secrets, delivery drains, the sweeper.

Delivery is at-least-once, in batches (as high-volume senders do it). `event_emit` writes the event and its
deliveries in the caller's transaction and, on commit, publishes at most one "drain" task for the schema
(none while one is already waiting to start: a short-lived Redis flag). A drain claims due deliveries in
one statement (`sending` with a lease, SKIP LOCKED), sends them concurrently over kept-alive connections
and records attempts and outcomes set-based, batch after batch, within a time budget; no transaction stays
open across the network calls, and two drains never send the same attempt. A beat sweeper publishes a
drain wherever a due delivery was never picked up (a lost publish) or a claim outlived its lease (a killed
worker): the same webhook-id is sent again, and receivers deduplicate.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial

from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from core import crypto
from core.bulk import insert_together
from core.errors import ApplicationError

from . import outbound
from .models import (
    ALL_EVENTS,
    EVENT_TYPES,
    DeliveryStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)
from .selectors import endpoints_subscribed, signing_secrets_by_endpoint

logger = logging.getLogger(__name__)

USER_AGENT = "rewards-portal-webhooks/1.0"
RESPONSE_EXCERPT_BYTES = 1024
SWEEP_BATCH = 500  # due deliveries marked per schema per sweep (one drain is published for them)
REDELIVER_MAX = 10_000  # deliveries one redeliver-failed call may reschedule


# --- Events (the outbox) ----------------------------------------------------------------------------


def event_emit(*, type: str, data: dict, write_with: Sequence[Sequence[models.Model]] = ()) -> Event:
    """Record an event and queue it for every enabled endpoint subscribed to `type`.

    Call it inside the `transaction.atomic()` block that makes the change the event announces: if that
    rolls back, nothing is recorded or sent; once it commits, delivery is guaranteed (at least once).
    `write_with`: the caller's new rows (groups of one model each, as core.bulk.insert_together), written by
    the event's own statement: one round trip for the change and its event.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}; add it to webhooks.models.EVENT_TYPES")
    if not connection.in_atomic_block:
        raise RuntimeError("event_emit() must be called inside the caller's transaction.atomic() block")
    event = _event_new(type=type, data=data)
    # One round trip: the event's INSERT and the read of the endpoints that want it share a statement.
    endpoint_ids = [endpoint_id for (endpoint_id,) in insert_together(*write_with, [event], then=_subscribed_sql(type))]
    _deliveries_create(event=event, endpoint_ids=endpoint_ids)
    return event


@lru_cache(maxsize=len(EVENT_TYPES))
def _subscribed_sql(type: str) -> tuple[str, tuple]:
    """endpoints_subscribed(type)'s ids as (SQL, params), compiled once per process: the text is the same in every
    schema (table names are unqualified; the search_path picks the tenant's)."""
    sql, params = endpoints_subscribed(type=type).values_list("id", flat=True).query.sql_with_params()
    return sql, tuple(params)


def _event_new(*, type: str, data: dict) -> Event:
    """An unsaved event; fails here, in the caller's transaction, rather than in a worker if data is not JSON."""
    json.dumps(data, cls=DjangoJSONEncoder)
    return Event(type=type, data=data)


def _event_record(*, type: str, data: dict, endpoint_ids: list[str]) -> Event:
    """Runs in the caller's transaction, without a savepoint: an insert for the event, one for its deliveries."""
    event = _event_new(type=type, data=data)
    event.save(force_insert=True)
    _deliveries_create(event=event, endpoint_ids=endpoint_ids)
    return event


def _deliveries_create(*, event: Event, endpoint_ids: list[str]) -> None:
    first_delay = _schedule()[0]
    deliveries = [
        WebhookDelivery(
            event=event,
            endpoint_id=endpoint_id,
            next_attempt_at=event.created_at + timedelta(seconds=first_delay),
            enqueued_at=event.created_at,
        )
        for endpoint_id in endpoint_ids
    ]
    if deliveries:
        WebhookDelivery.objects.bulk_create(deliveries)
        _drain_on_commit([d.id for d in deliveries], countdown=first_delay)


class _DrainOnCommit:
    """The on-commit callback that wakes a drain for one schema: one per transaction, whatever it emitted."""

    def __init__(self, *, schema_name: str, countdown: float, dedupe: bool) -> None:
        self.schema_name = schema_name
        self.countdown = countdown
        self.dedupe = dedupe
        self.delivery_ids: list[str] = []

    def __call__(self) -> None:
        _publish_drain(self.schema_name, countdown=self.countdown, delivery_ids=self.delivery_ids, dedupe=self.dedupe)


def _drain_on_commit(delivery_ids: list[str], *, countdown: float = 0, dedupe: bool = True) -> None:
    """After commit, publish a drain task for the current schema (one per transaction, however many calls).

    robust: a broker outage must not turn a committed business transaction into an error; the sweeper
    publishes whatever did not make it.
    """
    if not delivery_ids:
        return
    schema_name = connection.schema_name
    if dedupe and connection.in_atomic_block:
        for _, callback, _ in connection.run_on_commit:
            if (
                isinstance(callback, _DrainOnCommit)
                and callback.dedupe
                and callback.schema_name == schema_name
                and callback.countdown == countdown
            ):
                callback.delivery_ids.extend(delivery_ids)
                return
    callback = _DrainOnCommit(schema_name=schema_name, countdown=countdown, dedupe=dedupe)
    callback.delivery_ids.extend(delivery_ids)
    transaction.on_commit(callback, robust=True)


# A drain published and not yet started holds this flag, so commits meanwhile publish nothing more: the drain
# claims after it clears the flag, and so sees their deliveries. It expires in case the task is lost.
DRAIN_FLAG_SECONDS = 5
_redis_client = None


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _redis_client


def _drain_flag(schema_name: str, countdown: float = 0) -> tuple[str, int]:
    """(key, ttl ms) of the flag for an immediate drain, or for a delayed one due in the same 100 ms."""
    base = f"webhooks:drain:{connection.settings_dict['NAME']}:{schema_name}"
    if countdown < 0.1:
        return base, DRAIN_FLAG_SECONDS * 1000
    return f"{base}:at:{round((time.time() + countdown) * 10)}", int((countdown + DRAIN_FLAG_SECONDS) * 1000)


def _drain_flag_take(schema_name: str, countdown: float = 0) -> bool:
    """True if no drain (for that moment) is waiting to start: the caller must publish one."""
    key, ttl = _drain_flag(schema_name, countdown)
    try:
        return bool(_redis().set(key, b"1", nx=True, px=ttl))
    except Exception:
        return True  # Redis trouble: publish anyway (the broker may still take it; else the sweeper)


def _drain_flag_clear(schema_name: str) -> None:
    try:
        _redis().delete(_drain_flag(schema_name)[0])
    except Exception:
        logger.warning("webhook drain flag not cleared", exc_info=True)  # it expires by itself


def _publish_drain(
    schema_name: str, *, countdown: float = 0, delivery_ids: Iterable[str] = (), dedupe: bool = True
) -> bool:
    """Publish a drain task for the schema (unless one is already waiting); True if published.

    If the broker refuses, the deliveries are marked never-published so the next sweep publishes them.
    """
    from .tasks import webhook_deliveries_drain

    if dedupe and not _drain_flag_take(schema_name, countdown):
        return False
    try:
        webhook_deliveries_drain.apply_async(countdown=countdown or None, headers={"_schema_name": schema_name})
    except Exception:
        logger.exception("webhook drain publish failed; the sweeper will retry", extra={"schema": schema_name})
        if countdown < 0.1:
            _drain_flag_clear(schema_name)
        ids = list(delivery_ids)
        if ids:
            with schema_context(schema_name):
                WebhookDelivery.objects.filter(pk__in=ids).update(enqueued_at=None)
        return False
    return True


# --- Endpoints and secrets ----------------------------------------------------------------------------


def _secret_generate() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _clean_events(events: Iterable[str] | None) -> list[str]:
    cleaned = sorted({str(e).strip() for e in (events or []) if str(e).strip()})
    unknown = [e for e in cleaned if e != ALL_EVENTS and e not in EVENT_TYPES]
    if unknown:
        raise ApplicationError(
            f"Unknown event type(s): {', '.join(unknown)}.",
            code="validation_error",
            errors={"events": [f"Use event types from the list ({', '.join(EVENT_TYPES)}), or '*' for all."]},
        )
    return [ALL_EVENTS] if ALL_EVENTS in cleaned else cleaned


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    problem = outbound.validate_url(url) if len(url) <= 2000 else "At most 2000 characters."
    if problem:
        raise ApplicationError(f"Invalid url: {problem}", code="validation_error", errors={"url": [problem]})
    return outbound.normalize_url(url)


def webhook_endpoint_create(
    *, url: str, events: list[str] | None = None, description: str = "", enabled: bool = True
) -> tuple[WebhookEndpoint, str]:
    """A new receiver; returns it with its signing secret, which is shown this once and stored encrypted."""
    url = _clean_url(url)
    events = _clean_events(events)
    with transaction.atomic():
        if WebhookEndpoint.objects.count() >= settings.WEBHOOK_MAX_ENDPOINTS:
            raise ApplicationError(
                f"At most {settings.WEBHOOK_MAX_ENDPOINTS} webhook endpoints; delete one first.",
                code="too_many_endpoints",
            )
        endpoint = WebhookEndpoint.objects.create(
            url=url, events=events, description=description[:300], enabled=enabled
        )
        secret = _secret_generate()
        WebhookSecret.objects.create(endpoint=endpoint, secret_encrypted=crypto.encrypt(secret))
    logger.info("webhook endpoint created", extra={"event": "webhook.endpoint_created", "endpoint": endpoint.id})
    return endpoint, secret


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Change what is given (None: unchanged). Disabling fails pending deliveries; enabling clears the reason."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if url is not None:
            endpoint.url = _clean_url(url)
        if events is not None:
            endpoint.events = _clean_events(events)
        if description is not None:
            endpoint.description = description[:300]
        if enabled is not None and enabled != endpoint.enabled:
            endpoint.enabled = enabled
            if enabled:
                endpoint.disabled_reason = ""
                endpoint.failing_since = None
            else:
                endpoint.disabled_reason = "Disabled through the API."
                _fail_pending(endpoint_id=endpoint.pk, reason="The endpoint was disabled.")
        endpoint.updated_at = timezone.now()
        endpoint.save()
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Deletes the endpoint with its secrets, deliveries and attempts (events stay)."""
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
    logger.info("webhook endpoint deleted", extra={"event": "webhook.endpoint_deleted", "endpoint": endpoint.pk})


def webhook_secret_rotate(
    *, endpoint: WebhookEndpoint, previous_expires_in: timedelta | None = None
) -> tuple[str, datetime]:
    """A new current secret; the previous ones keep signing until now + previous_expires_in (default 24 h).

    Returns the new secret (shown this once) and when the previous one stops signing.
    """
    if previous_expires_in is None:
        previous_expires_in = timedelta(seconds=settings.WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS)
    if not timedelta(0) <= previous_expires_in <= timedelta(days=7):
        raise ApplicationError(
            "The previous secret may keep signing for 0 seconds to 7 days.",
            code="validation_error",
            errors={"previous_secret_expires_in": ["Use 0 to 604800 seconds."]},
        )
    now = timezone.now()
    expires_at = now + previous_expires_in
    with transaction.atomic():
        WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
        secrets_qs = WebhookSecret.objects.filter(endpoint_id=endpoint.pk)
        secrets_qs.filter(expires_at__lte=now).delete()
        secrets_qs.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=expires_at)).update(expires_at=expires_at)
        secret = _secret_generate()
        WebhookSecret.objects.create(endpoint_id=endpoint.pk, secret_encrypted=crypto.encrypt(secret), created_at=now)
    logger.info("webhook secret rotated", extra={"event": "webhook.secret_rotated", "endpoint": endpoint.pk})
    return secret, expires_at


def webhook_endpoint_test(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a `webhook.test` event to this endpoint alone."""
    if not endpoint.enabled:
        raise ApplicationError("The endpoint is disabled; enable it first.", code="endpoint_disabled", status=409)
    with transaction.atomic():
        event = _event_record(
            type="webhook.test",
            data={"endpoint_id": endpoint.pk, "message": "A test event sent from the API."},
            endpoint_ids=[endpoint.pk],
        )
        return WebhookDelivery.objects.select_related("event").get(event=event, endpoint_id=endpoint.pk)


# --- Redelivery ---------------------------------------------------------------------------------------


def _reschedule(qs) -> list[str]:
    """Send deliveries again now, on a fresh schedule, with the same ids (= the same webhook-id).

    Finished ones start over; pending ones waiting for a retry are brought forward; one being sent is left.
    """
    now = timezone.now()
    ids = list(
        qs.select_for_update(skip_locked=True, of=("self",))
        .exclude(status=DeliveryStatus.SENDING)
        .order_by("pk")
        .values_list("id", flat=True)[:REDELIVER_MAX]
    )
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, retry_index=0, next_attempt_at=now, enqueued_at=now, claim_token=""
    )
    _drain_on_commit(ids)
    return ids


def event_redeliver(*, event: Event, endpoint_id: str | None = None) -> list[WebhookDelivery]:
    """Send an event again to each enabled endpoint it went to (or to one, which it may not have gone to)."""
    with transaction.atomic():
        if endpoint_id is not None:
            endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
            if endpoint is None:
                raise ApplicationError(
                    "No webhook endpoint with this id.",
                    code="validation_error",
                    errors={"endpoint_id": ["Unknown endpoint."]},
                )
            if not endpoint.enabled:
                raise ApplicationError(
                    "The endpoint is disabled; enable it first.", code="endpoint_disabled", status=409
                )
            delivery, created = WebhookDelivery.objects.get_or_create(
                event=event, endpoint=endpoint, defaults={"enqueued_at": timezone.now()}
            )
            if created:
                _drain_on_commit([delivery.pk])
            qs = WebhookDelivery.objects.filter(pk=delivery.pk)
        else:
            qs = WebhookDelivery.objects.filter(event=event, endpoint__enabled=True)
        _reschedule(qs)
        return list(qs.select_related("event").order_by("created_at", "id"))


def webhook_endpoint_redeliver_failed(*, endpoint: WebhookEndpoint, since: datetime, until: datetime | None) -> int:
    """Reschedule this endpoint's failed deliveries of events created in [since, until)."""
    if not endpoint.enabled:
        raise ApplicationError("The endpoint is disabled; enable it first.", code="endpoint_disabled", status=409)
    until = until or timezone.now()
    if since >= until:
        raise ApplicationError(
            "`since` must be before `until`.", code="validation_error", errors={"since": ["Must be before until."]}
        )
    with transaction.atomic():
        qs = WebhookDelivery.objects.filter(
            endpoint=endpoint,
            status=DeliveryStatus.FAILED,
            event__created_at__gte=since,
            event__created_at__lt=until,
        )
        return len(_reschedule(qs))


# --- Delivery -----------------------------------------------------------------------------------------


def _schedule() -> list[float]:
    return [float(s) for s in settings.WEBHOOK_RETRY_SCHEDULE] or [0.0]


def _jittered(seconds: float) -> float:
    spread = seconds * settings.WEBHOOK_RETRY_JITTER
    return max(0.0, seconds + random.uniform(-spread, spread))


def _retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _fail_pending(*, endpoint_id: str, reason: str) -> int:
    return WebhookDelivery.objects.filter(endpoint_id=endpoint_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, last_error=reason[:500], enqueued_at=None
    )


def _endpoint_auto_disable(*, endpoint_id: str, reason: str, only_if_failing_before: datetime | None = None) -> bool:
    """Disable an enabled endpoint (optionally only if it has been failing since before a time); True if we did."""
    qs = WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True)
    if only_if_failing_before is not None:
        qs = qs.filter(failing_since__lte=only_if_failing_before)
    if not qs.update(enabled=False, disabled_reason=reason[:300], updated_at=timezone.now()):
        return False
    _fail_pending(endpoint_id=endpoint_id, reason=f"The endpoint was disabled: {reason}")
    tenant = getattr(connection, "tenant", None)
    transaction.on_commit(partial(_notify_admins_endpoint_disabled, tenant, endpoint_id, reason), robust=True)
    logger.warning("webhook endpoint disabled", extra={"event": "webhook.endpoint_disabled", "endpoint": endpoint_id})
    return True


def _notify_admins_endpoint_disabled(tenant, endpoint_id: str, reason: str) -> None:
    """Email the tenant's admins (a sandbox twin's are those of its live tenant)."""
    from accounts.models import Role, User

    if tenant is None or not getattr(tenant, "schema_name", None):
        return
    with schema_context(tenant.schema_name):
        endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        return
    people_schema = (
        tenant.live.schema_name if getattr(tenant, "is_sandbox", False) and tenant.live else tenant.schema_name
    )
    with schema_context(people_schema):
        recipients = list(User.objects.filter(role=Role.ADMIN, is_active=True).values_list("email", flat=True))
    if not recipients:
        return
    where = "sandbox" if getattr(tenant, "is_sandbox", False) else "live"
    send_mail(
        subject=f"Webhook endpoint disabled: {endpoint.url}",
        message=(
            f"We stopped sending webhooks to {endpoint.url} (endpoint {endpoint.id}, {where} mode).\n\n"
            f"Reason: {reason}\n\n"
            "Events are still recorded. When the receiver works again, re-enable the endpoint "
            f"(PATCH /api/v1/webhook-endpoints/{endpoint.id} with enabled=true) and resend what it missed "
            f"(POST /api/v1/webhook-endpoints/{endpoint.id}/redeliver-failed?since=...).\n"
        ),
        from_email=None,
        recipient_list=recipients,
        fail_silently=False,
    )


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
# Threads per worker process that make the HTTP requests of every drain running in it.
SEND_THREADS = 64
# How often a drain writes the outcomes of the requests answered meanwhile.
FLUSH_SECONDS = 0.2
# A request must end this long before its claim's lease runs out (time to record it: flushes come every
# FLUSH_SECONDS), and is not started with less than MIN_REQUEST_SECONDS left: a delivery is never in flight
# when another drain may take it over.
LEASE_MARGIN_SECONDS = 1.0
MIN_REQUEST_SECONDS = 1.0

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


@dataclass
class _Send:
    """One claimed delivery on its way: what is sent, and what came back."""

    delivery_id: str
    endpoint_id: str
    number: int
    retry_index: int
    url: str = ""
    body: bytes = b""
    keys: tuple[bytes, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    response: outbound.Response | None = None
    recorded: bool = False


_executor_lock = threading.Lock()
_executor_instance: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _executor_instance
    with _executor_lock:
        if _executor_instance is None:
            _executor_instance = ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="webhook-send")
        return _executor_instance


def _fault_point(point: str) -> None:
    """Test-only: core.faults kills the worker here when a resilience test armed `point`; otherwise nothing."""
    if getattr(settings, "FAULT_INJECTION", False):
        from core.faults import fault_point

        fault_point(point)


def _sign(send: _Send) -> None:
    """Standard Webhooks v1 headers (several signatures during a rotation); the timestamp is the send time."""
    timestamp = str(int(time.time()))
    signed = f"{send.delivery_id}.{timestamp}.".encode() + send.body
    signatures = " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in send.keys
    )
    send.headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": send.delivery_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signatures,
    }


def _send_lane(sends: deque, deadline: float, lease_end: float) -> None:
    """POST one endpoint's deliveries in turn over a kept-alive connection, until none is left or time is up.

    Each request's timeout is cut to what is left of the claim's lease (`lease_end`, monotonic), so no
    request is still in flight when another drain may take the delivery over. Never raises: an unexpected
    error (a bug, a URL http.client cannot encode) is that delivery's failed attempt, not the lane's end.
    """
    while time.monotonic() < deadline:
        timeout = min(settings.WEBHOOK_TIMEOUT_SECONDS, lease_end - time.monotonic() - LEASE_MARGIN_SECONDS)
        if timeout < MIN_REQUEST_SECONDS:
            return
        try:
            send = sends.popleft()
        except IndexError:
            return
        try:
            _sign(send)
            response = outbound.post(
                send.url,
                body=send.body,
                headers=send.headers,
                timeout=timeout,
                max_body=RESPONSE_EXCERPT_BYTES,
                keep_alive=True,
            )
        except Exception as exc:
            logger.error(
                "webhook request failed unexpectedly",
                extra={"event": "webhook.send_error", "delivery_id": send.delivery_id, "error": type(exc).__name__},
            )
            response = outbound.Response(error=f"{type(exc).__name__}: {exc}"[:500])
        if response.status is not None and 200 <= response.status < 300:
            _fault_point("webhook.sent")  # the receiver took it, not yet recorded: it will be sent again
        send.response = response  # from here the drain may record it


def _claim(
    *,
    token: str,
    limit: int,
    only: list[str] | None = None,
    exclude: list[str] | None = None,
    tolerance: float = DUE_TOLERANCE_SECONDS,
) -> list[tuple]:
    """Claim up to `limit` due deliveries in one statement (SKIP LOCKED): of the ids in `only` if given, not
    of the endpoints in `exclude`."""
    now = timezone.now()
    table = WebhookDelivery._meta.db_table
    where = ("AND id = ANY(%(only)s) " if only is not None else "") + (
        "AND endpoint_id <> ALL(%(exclude)s)" if exclude else ""
    )
    sql = _CLAIM_SQL.format(table=table, only=where)
    params = {
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
        rows = cursor.fetchall()
    rows.sort(key=lambda row: (row[5], row[0]))  # oldest due first, so each endpoint gets them in order
    return rows


def _prepare(rows: list, *, token: str) -> list[_Send]:
    """Load what the claimed deliveries need, once per batch: events, endpoints, decrypted signing secrets."""
    event_ids = {row[1] for row in rows}
    endpoint_ids = {row[2] for row in rows}
    endpoints = {
        pk: (url, enabled)
        for pk, url, enabled in WebhookEndpoint.objects.filter(pk__in=endpoint_ids).values_list("id", "url", "enabled")
    }
    keys = {
        endpoint_id: tuple(base64.b64decode(secret.removeprefix("whsec_")) for secret in secrets_)
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
            _Send(
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


def _outcome(send: _Send, now: datetime) -> dict:
    """What an attempt's response means for its delivery: succeeded, failed, or pending until a retry time."""
    response = send.response
    succeeded = response.status is not None and 200 <= response.status < 300
    error = response.error or ("" if succeeded else f"HTTP {response.status}")
    outcome = {
        "status": DeliveryStatus.SUCCEEDED if succeeded else DeliveryStatus.FAILED,
        "code": response.status,
        "error": "" if succeeded else error[:500],
        "retry_index": send.retry_index,
        "next_attempt_at": None,
        "enqueued_at": None,
        "succeeded_at": now if succeeded else None,
        "succeeded": succeeded,
        "attempt_error": error[:500],
    }
    if succeeded:
        return outcome
    outcome["retry_index"] = send.retry_index + 1
    schedule = _schedule()
    if response.status == 410 or outcome["retry_index"] >= len(schedule):
        return outcome
    delay = _jittered(schedule[outcome["retry_index"]])
    if response.status in (429, 503):
        wait = _retry_after_seconds(response.headers.get("retry-after"), now)
        if wait is not None:
            delay = max(delay, min(wait, settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS))
    outcome["status"] = DeliveryStatus.PENDING
    outcome["next_attempt_at"] = now + timedelta(seconds=delay)
    if delay <= settings.WEBHOOK_COUNTDOWN_MAX_SECONDS:
        outcome["enqueued_at"] = outcome["next_attempt_at"]  # a drain is published for then (below)
    outcome["delay"] = delay
    return outcome


def _record(sends: list[_Send], *, token: str) -> dict[str, WebhookAttempt]:
    """Attempts (one bulk insert) and outcomes (one set-based UPDATE), in one transaction; then the log lines.

    An attempt whose claim was taken over (lease expired) is recorded, but the state belongs to the new owner.
    """
    now = timezone.now()
    outcomes = {send.delivery_id: _outcome(send, now) for send in sends}
    table = WebhookDelivery._meta.db_table
    attempts: dict[str, WebhookAttempt] = {}
    retry_delays: list[float] = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            columns = {
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
                response_status=send.response.status,
                response_excerpt=send.response.body_excerpt.decode("utf-8", errors="replace"),
                duration_ms=send.response.duration_ms,
                error=outcome["attempt_error"],
                succeeded=outcome["succeeded"],
                created_at=now,
            )
        WebhookAttempt.objects.bulk_create(attempts.values())
        # The endpoints' failure runs: the last outcome per endpoint in this batch decides.
        last: dict[str, _Send] = {}
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
                if send.delivery_id in owned and send.response.status == 410:
                    _endpoint_auto_disable(
                        endpoint_id=send.endpoint_id, reason=f"The receiver at {send.url} answered 410 Gone."
                    )
            for endpoint_id in failing:
                # Disabling fails the endpoint's pending deliveries, including those just set to retry.
                _endpoint_auto_disable(
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
            _drain_on_commit(
                [d for d in owned if outcomes[d]["enqueued_at"] is not None], countdown=max(0.0, min(retry_delays))
            )
    for send in sends:
        outcome = outcomes[send.delivery_id]
        (logger.info if outcome["succeeded"] else logger.warning)(
            "webhook attempt",
            extra={
                "event": "webhook.attempt",
                "delivery": send.delivery_id,
                "attempt": send.number,
                "status": send.response.status,
                "error": outcome["attempt_error"][:200],
                "duration_ms": send.response.duration_ms,
                "outcome": outcome["status"] if send.delivery_id in owned else "taken over",
            },
        )
    return attempts


def _release(sends: list[_Send], *, token: str) -> None:
    if sends:
        with connection.cursor() as cursor:
            cursor.execute(
                _RELEASE_SQL.format(table=WebhookDelivery._meta.db_table),
                {"ids": [send.delivery_id for send in sends], "token": token},
            )


def _deliver(rows: list, *, token: str, deadline: float) -> dict[str, WebhookAttempt]:
    """Send the claimed deliveries and record what happened; those not sent before the deadline go back."""
    lease_end = time.monotonic() + _sending_lease().total_seconds()
    sends = _prepare(rows, token=token)
    if not sends:
        return {}
    _send_lane(deque(sends), deadline, lease_end)
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
    sends: list[_Send]
    lanes: list[Future]

    def done(self) -> bool:
        return all(lane.done() for lane in self.lanes)


def _start(sends: list[_Send], *, token: str, deadline: float, lease_end: float) -> list[_Group]:
    by_endpoint: dict[str, list[_Send]] = {}
    for send in sends:
        by_endpoint.setdefault(send.endpoint_id, []).append(send)
    groups = []
    for endpoint_id, mine in by_endpoint.items():
        queue = deque(mine)
        lanes = [
            _executor().submit(_send_lane, queue, deadline, lease_end)
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
    _drain_flag_clear(schema_name)  # from now on a commit publishes a new drain: we may have claimed already
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
                    _publish_drain(schema_name)  # more is due: another worker can take the next batch meanwhile
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
        _publish_drain(schema_name)  # whatever is left, in a new task
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
        _publish_drain(schema_name, countdown=max(0.0, (next_at - now).total_seconds()))


# --- The sweeper (beat) ------------------------------------------------------------------------------


def webhook_deliveries_sweep() -> int:
    """Publish due deliveries whose task was lost, in every tenant schema (live and sandbox twins)."""
    from tenants.models import Tenant

    published = 0
    for tenant in Tenant.objects.order_by("pk"):
        with tenant_context(tenant):
            published += webhook_deliveries_sweep_schema()
    return published


def webhook_deliveries_sweep_schema(*, now: datetime | None = None) -> int:
    """In the current schema: publish a drain if a due delivery was not picked up, or a claim's lease ran out.

    A pending delivery counts once nobody has published for it in WEBHOOK_REQUEUE_AFTER_SECONDS; a `sending`
    one as soon as its lease has expired (its worker died). Returns how many such deliveries there were.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(
                Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=stale))
                | Q(status=DeliveryStatus.SENDING, locked_until__lte=now)
            )
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:SWEEP_BATCH]
        )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(enqueued_at=now)
            _drain_on_commit(ids, dedupe=False)
    return len(ids)
