"""Writes for webhooks: the event outbox (`event_emit`), endpoints and secrets, delivery attempts, the sweeper.

Delivery is at-least-once. `event_emit` writes the event and its deliveries in the caller's transaction
and publishes tasks on commit; a beat sweeper re-publishes any due delivery whose task was lost. A worker
claims a delivery (row lock, SKIP LOCKED, then a `sending` state with a lease) before the HTTP request and
records the outcome afterwards, so two workers never send the same attempt and no transaction stays open
across the network call.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import secrets
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context
from standardwebhooks import Webhook

from core import crypto
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
from .selectors import endpoints_subscribed, signing_secrets

logger = logging.getLogger(__name__)

USER_AGENT = "rewards-portal-webhooks/1.0"
RESPONSE_EXCERPT_BYTES = 1024
SWEEP_BATCH = 500  # due deliveries published per schema per sweep: ~25 ms to pick and mark, + 1 publish each
REDELIVER_MAX = 10_000  # deliveries one redeliver-failed call may reschedule


# --- Events (the outbox) ----------------------------------------------------------------------------


def event_emit(*, type: str, data: dict) -> Event:
    """Record an event and queue it for every enabled endpoint subscribed to `type`.

    Call it inside the `transaction.atomic()` block that makes the change the event announces: if that
    rolls back, nothing is recorded or sent; once it commits, delivery is guaranteed (at least once).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}; add it to webhooks.models.EVENT_TYPES")
    if not connection.in_atomic_block:
        raise RuntimeError("event_emit() must be called inside the caller's transaction.atomic() block")
    endpoint_ids = list(endpoints_subscribed(type=type).values_list("id", flat=True))
    return _event_record(type=type, data=data, endpoint_ids=endpoint_ids)


def _event_record(*, type: str, data: dict, endpoint_ids: list[str]) -> Event:
    """Runs in the caller's transaction, without a savepoint: an insert for the event, one for its deliveries."""
    # Fail here, in the caller's transaction, rather than in a worker: data must be JSON.
    json.dumps(data, cls=DjangoJSONEncoder)
    event = Event.objects.create(type=type, data=data)
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
        _publish_on_commit([d.id for d in deliveries], countdown=first_delay)
    return event


def _publish_on_commit(delivery_ids: list[str], *, countdown: float = 0) -> None:
    if delivery_ids:
        # robust: a broker outage must not turn a committed business transaction into an error; the
        # sweeper publishes whatever did not make it.
        transaction.on_commit(
            partial(_publish, list(delivery_ids), schema_name=connection.schema_name, countdown=countdown),
            robust=True,
        )


def _publish(delivery_ids: list[str], *, schema_name: str, countdown: float = 0) -> None:
    from .tasks import webhook_delivery_attempt

    for position, delivery_id in enumerate(delivery_ids):
        try:
            webhook_delivery_attempt.apply_async(
                (delivery_id,), countdown=countdown or None, headers={"_schema_name": schema_name}
            )
        except Exception:
            logger.exception("webhook task publish failed; the sweeper will retry", extra={"delivery": delivery_id})
            with schema_context(schema_name):
                WebhookDelivery.objects.filter(pk__in=delivery_ids[position:]).update(enqueued_at=None)
            return


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
    return url


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
    _publish_on_commit(ids)
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
                _publish_on_commit([delivery.pk])
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


def _signed_request(*, delivery: WebhookDelivery, body: str) -> dict[str, str]:
    timestamp = datetime.fromtimestamp(int(timezone.now().timestamp()), UTC)
    signatures = [
        Webhook(secret).sign(msg_id=delivery.pk, timestamp=timestamp, data=body)
        for secret in signing_secrets(endpoint_id=delivery.endpoint_id)
    ]
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.pk,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


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
    """How long a claim (`sending`) lasts before the sweeper may hand the delivery to another worker.

    By default past the task's hard time limit, which no live worker outlives. WEBHOOK_SENDING_LEASE_SECONDS
    (test settings) shortens it so a delivery held by a killed worker is recovered within seconds; a lease
    shorter than an attempt only risks a duplicate send, never a lost one (the claim token decides the outcome).
    """
    seconds = getattr(settings, "WEBHOOK_SENDING_LEASE_SECONDS", None)
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30 if seconds is None else float(seconds))


def webhook_delivery_attempt(*, delivery_id: str) -> WebhookAttempt | None:
    """Make the next attempt of a delivery if it is due and nobody else is making it; record the outcome.

    Safe to run twice or concurrently: a delivery that is done, not due, or claimed by another worker is
    left alone (returns None).
    """
    now = timezone.now()
    lease = _sending_lease()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event", "endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return None  # locked by another worker, or deleted with its endpoint
        if delivery.status == DeliveryStatus.PENDING:
            # A countdown may fire a hair early (clock skew between hosts); a real early duplicate waits.
            if delivery.next_attempt_at > now + timedelta(seconds=2):
                return None
        elif delivery.status == DeliveryStatus.SENDING:
            if delivery.locked_until and delivery.locked_until > now:
                return None  # another worker holds the lease
        else:
            return None  # succeeded or failed: nothing to do
        if not delivery.endpoint.enabled:
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = "The endpoint is disabled."
            delivery.save(update_fields=["status", "last_error"])
            return None
        token = uuid.uuid4().hex
        delivery.status = DeliveryStatus.SENDING
        delivery.claim_token = token
        delivery.locked_until = now + lease
        delivery.attempt_count += 1
        delivery.save(update_fields=["status", "claim_token", "locked_until", "attempt_count"])
        number = delivery.attempt_count
        url = delivery.endpoint.url
        body = json.dumps(delivery.event.payload(), cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)
        headers = _signed_request(delivery=delivery, body=body)

    response = outbound.post(
        url,
        body=body.encode(),
        headers=headers,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        max_body=RESPONSE_EXCERPT_BYTES,
    )
    return _attempt_record(
        delivery_id=delivery_id, token=token, number=number, url=url, headers=headers, response=response
    )


def _attempt_record(
    *, delivery_id: str, token: str, number: int, url: str, headers: dict, response: outbound.Response
) -> WebhookAttempt | None:
    now = timezone.now()
    succeeded = response.status is not None and 200 <= response.status < 300
    error = response.error or ("" if succeeded else f"HTTP {response.status}")
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update(of=("self",)).filter(pk=delivery_id).first()
        if delivery is None:
            return None  # the endpoint was deleted while we were sending
        attempt = WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            url=url,
            request_headers=headers,
            response_status=response.status,
            response_excerpt=response.body_excerpt.decode("utf-8", errors="replace"),
            duration_ms=response.duration_ms,
            error=error[:500],
            succeeded=succeeded,
            created_at=now,
        )
        if delivery.claim_token != token:
            return attempt  # our lease expired and another worker took over: it owns the state now
        delivery.claim_token = ""
        delivery.locked_until = None
        delivery.last_attempt_at = now
        delivery.last_status_code = response.status
        delivery.last_error = "" if succeeded else error[:500]
        endpoint_id = delivery.endpoint_id
        if succeeded:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.succeeded_at = now
            WebhookEndpoint.objects.filter(pk=endpoint_id).exclude(failing_since=None).update(failing_since=None)
        else:
            WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since=None).update(failing_since=now)
            delivery.retry_index += 1
            schedule = _schedule()
            if response.status == 410:
                delivery.status = DeliveryStatus.FAILED
                _endpoint_auto_disable(endpoint_id=endpoint_id, reason=f"The receiver at {url} answered 410 Gone.")
            elif delivery.retry_index >= len(schedule):
                delivery.status = DeliveryStatus.FAILED
            else:
                delay = _jittered(schedule[delivery.retry_index])
                if response.status in (429, 503):
                    wait = _retry_after_seconds(response.headers.get("retry-after"), now)
                    if wait is not None:
                        delay = max(delay, min(wait, settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS))
                delivery.status = DeliveryStatus.PENDING
                delivery.next_attempt_at = now + timedelta(seconds=delay)
                if delay <= settings.WEBHOOK_COUNTDOWN_MAX_SECONDS:
                    delivery.enqueued_at = delivery.next_attempt_at
                    _publish_on_commit([delivery.pk], countdown=delay)
                else:
                    delivery.enqueued_at = None  # the sweeper publishes it when due
            disable_after = timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS)
            if _endpoint_auto_disable(
                endpoint_id=endpoint_id,
                reason=f"Every attempt failed for {disable_after.days} days.",
                only_if_failing_before=now - disable_after,
            ):
                delivery.status = DeliveryStatus.FAILED
        delivery.save()
    log = logger.info if succeeded else logger.warning
    log(
        "webhook attempt",
        extra={
            "event": "webhook.attempt",
            "delivery": delivery_id,
            "attempt": number,
            "status": response.status,
            "error": error[:200],
            "duration_ms": response.duration_ms,
            "outcome": delivery.status,
        },
    )
    return attempt


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
    """In the current schema: due deliveries nobody has published recently, or whose sender's lease expired."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(
                Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                | Q(status=DeliveryStatus.SENDING, locked_until__lte=now)
            )
            .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=stale))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:SWEEP_BATCH]
        )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(enqueued_at=now)
            _publish_on_commit(ids)
    return len(ids)
