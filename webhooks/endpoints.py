"""Webhook endpoints: create, update, delete, rotate their signing secrets, send a test; auto-disable on failure.

A receiver that answers 410 Gone, or fails every attempt for WEBHOOK_DISABLE_AFTER_SECONDS, is disabled by
the drain (`endpoint_auto_disable`): its pending deliveries fail and the tenant's admins get an email.

Creating, changing, deleting an endpoint and rotating its secret decide where signed events go and who can
verify them: each records an audit row naming the `actor`, in its own transaction (never the secret).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django_tenants.utils import schema_context

from audit.actors import Actor
from audit.services import audit_action
from core import crypto
from core.errors import ApplicationError

from . import outbound
from .events import event_record
from .models import ALL_EVENTS, EVENT_TYPES, DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookSecret
from .signing import secret_generate

if TYPE_CHECKING:
    from core.db import SchemaTenant

logger = logging.getLogger(__name__)


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
    *,
    url: str,
    events: list[str] | None = None,
    description: str = "",
    enabled: bool = True,
    actor: Actor | None = None,
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
        secret = secret_generate()
        WebhookSecret.objects.create(endpoint=endpoint, secret_encrypted=crypto.encrypt(secret))
        audit_action(
            actor=actor, action="webhook_endpoint.create", object_type="webhook_endpoint", object_id=endpoint.pk,
            data={"url": endpoint.url, "events": list(endpoint.events)},
        )  # fmt: skip
    logger.info("webhook endpoint created", extra={"event": "webhook.endpoint_created", "endpoint": endpoint.id})
    return endpoint, secret


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
    actor: Actor | None = None,
) -> WebhookEndpoint:
    """Change what is given (None: unchanged). Disabling fails pending deliveries; enabling clears the reason.

    Audited when something changed: `webhook_endpoint.enable` / `.disable` when that is all, else
    `webhook_endpoint.update` with the changed fields before and after.
    """
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _audited_fields(endpoint)
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
        after = _audited_fields(endpoint)
        changed = {name: value for name, value in after.items() if before[name] != value}
        if set(changed) == {"enabled"}:
            action, data = f"webhook_endpoint.{'enable' if endpoint.enabled else 'disable'}", {}
        else:
            action, data = "webhook_endpoint.update", {"before": {n: before[n] for n in changed}, "after": changed}
        if changed:
            audit_action(actor=actor, action=action, object_type="webhook_endpoint", object_id=endpoint.pk, data=data)
    return endpoint


def _audited_fields(endpoint: WebhookEndpoint) -> dict[str, object]:
    return {
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
    }


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor | None = None) -> None:
    """Deletes the endpoint with its secrets, deliveries and attempts (events stay)."""
    with transaction.atomic():
        if WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()[0]:
            audit_action(
                actor=actor, action="webhook_endpoint.delete", object_type="webhook_endpoint", object_id=endpoint.pk,
                data={"url": endpoint.url},
            )  # fmt: skip
    logger.info("webhook endpoint deleted", extra={"event": "webhook.endpoint_deleted", "endpoint": endpoint.pk})


def webhook_secret_rotate(
    *, endpoint: WebhookEndpoint, previous_expires_in: timedelta | None = None, actor: Actor | None = None
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
        secret = secret_generate()
        WebhookSecret.objects.create(endpoint_id=endpoint.pk, secret_encrypted=crypto.encrypt(secret), created_at=now)
        audit_action(
            actor=actor, action="webhook_endpoint.rotate_secret", object_type="webhook_endpoint",
            object_id=endpoint.pk, data={"previous_expires_at": expires_at.isoformat()},
        )  # fmt: skip
    logger.info("webhook secret rotated", extra={"event": "webhook.secret_rotated", "endpoint": endpoint.pk})
    return secret, expires_at


def webhook_endpoint_test(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a `webhook.test` event to this endpoint alone."""
    if not endpoint.enabled:
        raise ApplicationError("The endpoint is disabled; enable it first.", code="endpoint_disabled", status=409)
    with transaction.atomic():
        event = event_record(
            type="webhook.test",
            data={"endpoint_id": endpoint.pk, "message": "A test event sent from the API."},
            endpoint_ids=[endpoint.pk],
        )
        return WebhookDelivery.objects.select_related("event").get(event=event, endpoint_id=endpoint.pk)


def _fail_pending(*, endpoint_id: str, reason: str) -> int:
    return WebhookDelivery.objects.filter(endpoint_id=endpoint_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, last_error=reason[:500], enqueued_at=None
    )


def endpoint_auto_disable(*, endpoint_id: str, reason: str, only_if_failing_before: datetime | None = None) -> bool:
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


def _notify_admins_endpoint_disabled(tenant: SchemaTenant | None, endpoint_id: str, reason: str) -> None:
    """Email the tenant's admins (a sandbox twin's are those of its live tenant)."""
    from accounts.models import Role, User
    from accounts.services import staff_email_languages
    from core.i18n import language
    from tenants.models import Tenant

    if tenant is None or not getattr(tenant, "schema_name", None):
        return
    with schema_context(tenant.schema_name):
        endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        return
    people_schema = (
        tenant.live.schema_name
        if isinstance(tenant, Tenant) and tenant.is_sandbox and tenant.live
        else tenant.schema_name
    )
    with schema_context(people_schema):
        recipients = list(User.objects.filter(role=Role.ADMIN, is_active=True).values_list("email", flat=True))
        groups = staff_email_languages(recipients, default=getattr(tenant, "default_locale", ""))
    values = {"url": endpoint.url, "id": endpoint.id}
    for code, emails in groups.items():
        with language(code):  # each admin in the language they read the portal in
            where = gettext("sandbox mode") if getattr(tenant, "is_sandbox", False) else gettext("live mode")
            send_mail(
                subject=gettext("Webhook endpoint disabled: %(url)s") % values,
                message=(
                    gettext("We stopped sending webhooks to %(url)s (endpoint %(id)s, %(mode)s).")
                    % {**values, "mode": where}
                    + "\n\n"
                    + gettext("Reason: %(reason)s") % {"reason": reason}
                    + "\n\n"
                    + gettext(
                        "Events are still recorded. When the receiver works again, re-enable the endpoint "
                        "(PATCH /api/v1/webhook-endpoints/%(id)s with enabled=true) and resend what it missed "
                        "(POST /api/v1/webhook-endpoints/%(id)s/redeliver-failed?since=...)."
                    )
                    % values
                    + "\n"
                ),
                from_email=None,
                recipient_list=emails,
                fail_silently=False,
            )
