"""Emails about approvals: the people who may approve hear that an order or a batch waits for them, and whoever
asked hears how it ended (approved, rejected, or expired with nobody deciding).

Approvers are the tenant's active staff whose role may approve (APPROVER_ROLES: the portal's Perm.APPROVE),
never the person who asked (four eyes: they could not approve it anyway); each gets their own email in the
language they read the portal in, with the amount, who asked, when the request expires and a link to the
approvals queue. The requester is told only when a staff member asked (an API key's caller hears through the
`order.approved` / `order.rejected` webhooks).

Sent by a Celery task after the decision commits (`approval_notice_task`, JSON arguments only: the notice is
described by the caller, so a batch's notice needs nothing from batches here), so a slow mail server never
slows an order, an approval or the expiry sweep, and a rolled-back decision mails nobody.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from accounts.models import Role, User
from core.money import format_amount
from core.publish import task_publish
from core.zones import zone_get

logger = logging.getLogger(__name__)

APPROVAL_NOTICE_TASK = "orders.tasks.approval_notice_task"
# The roles whose staff may approve (portal.permissions gives them Perm.APPROVE; a test keeps the two equal).
APPROVER_ROLES = (Role.ADMIN, Role.FINANCE)
REQUIRED, APPROVED, REJECTED, EXPIRED = "required", "approved", "rejected", "expired"
NOTICES = (REQUIRED, APPROVED, REJECTED, EXPIRED)


def approval_notice(
    *,
    notice: str,
    kind: str,
    object_id: Any,
    totals: dict[str, Decimal],
    count: int,
    name: str,
    requested_by: str,
    placed_by: str,
    expires_at: datetime | None,
    decided_by: str = "",
    reason: str = "",
) -> None:
    """Queue the emails of `notice` (REQUIRED, APPROVED, REJECTED, EXPIRED) about an order or a batch (`kind`) once
    the current transaction commits. `requested_by` and `placed_by` are Actor labels (`staff:<email>`,
    `api-key:<id>`): neither is ever asked to approve."""
    from core.db import connection
    from tenants.selectors import tenant_current

    tenant = tenant_current()
    schema = connection.schema_name  # the worker runs the task there (read now: on_commit may run elsewhere)
    payload = {
        "notice": notice,
        "kind": kind,
        "id": str(object_id),
        "totals": [[format_amount(amount, currency), currency] for currency, amount in sorted(totals.items())],
        "count": count,
        "name": name[:200],
        "requested_by": requested_by,
        "placed_by": placed_by,
        "expires_at": expires_at.isoformat() if expires_at else "",
        "decided_by": decided_by,
        "reason": reason[:300],
        "sandbox": bool(getattr(tenant, "is_sandbox", False)),
    }
    transaction.on_commit(
        lambda: task_publish(
            APPROVAL_NOTICE_TASK,
            args=[payload],
            event="approval.notice_publish_failed",
            log_extra={"approval_kind": kind, "object_id": str(object_id)},
            headers={"_schema_name": schema},
        ),
        robust=True,
    )


def _staff_email(label: str) -> str:
    return label.removeprefix("staff:").lower() if label.startswith("staff:") else ""


def _who(label: str) -> str:
    """An Actor label as a person reads it: the email of a staff member, 'API key <id>' for a key."""
    if label.startswith("staff:"):
        return label.removeprefix("staff:")
    if label.startswith("api-key:"):
        from django.utils.translation import gettext

        return gettext("API key %(key)s") % {"key": label.removeprefix("api-key:")}
    return label


def _portal_url(tenant: Any, path: str) -> str:
    """`path` on the tenant's portal host (scheme and port as PUBLIC_BASE_URL's)."""
    from tenants.models import Domain

    live = tenant.live if getattr(tenant, "is_sandbox", False) and tenant.live else tenant
    domain = (
        Domain.objects.filter(tenant=live).order_by("-is_primary", "pk").values_list("domain", flat=True).first()
        or f"{live.slug}.{settings.PORTAL_DOMAIN}"
    )
    base = urlsplit(settings.PUBLIC_BASE_URL)
    port = f":{base.port}" if base.port else ""
    return f"{base.scheme or 'https'}://{domain}{port}{path}"


def _link(tenant: Any, payload: dict[str, Any]) -> str:
    """Approvers go to the queue; the requester to what they asked for (its page says how it went on)."""
    if payload["notice"] == REQUIRED:
        return _portal_url(tenant, reverse("portal:approvals"))
    if payload["kind"] == "batch":
        return _portal_url(tenant, reverse("portal:bulk_batch", kwargs={"batch_id": payload["id"]}))
    return _portal_url(tenant, reverse("portal:order", kwargs={"order_id": payload["id"]}))


def _recipients(payload: dict[str, Any]) -> list[User]:
    """Who this notice goes to, read from the live schema (a sandbox twin's staff are its live tenant's)."""
    if payload["notice"] == REQUIRED:
        makers = {_staff_email(payload["requested_by"]), _staff_email(payload["placed_by"])} - {""}
        users = User.objects.filter(role__in=APPROVER_ROLES, is_active=True).exclude(email__in=makers)
    else:
        asker = _staff_email(payload["requested_by"]) or _staff_email(payload["placed_by"])
        users = User.objects.filter(email=asker, is_active=True) if asker else User.objects.none()
    return [user for user in users.order_by("email") if user.has_usable_password()]


def approval_notice_send(payload: dict[str, Any]) -> int:
    """Send the emails a queued notice describes, in the current (live or sandbox) tenant; returns how many."""
    from django.core.mail import get_connection
    from django_tenants.utils import tenant_context

    from accounts.services import staff_email_language, staff_email_send
    from core.i18n import language
    from tenants.selectors import tenant_current

    tenant = tenant_current()
    if payload.get("notice") not in NOTICES:
        return 0
    live = tenant.live if getattr(tenant, "is_sandbox", False) and tenant.live else tenant
    with tenant_context(live):
        recipients = _recipients(payload)
        languages = {user.pk: staff_email_language(user) for user in recipients}
    if not recipients:
        extra = {"event": "approval.notice_unsent", "notice": payload["notice"], "object_id": payload["id"]}
        logger.info("approval notice with nobody to tell", extra=extra)
        return 0
    zone = zone_get(getattr(live, "timezone", "") or "UTC")
    expires = datetime.fromisoformat(payload["expires_at"]).astimezone(zone) if payload["expires_at"] else None
    template = "portal/emails/approval_required" if payload["notice"] == REQUIRED else "portal/emails/approval_decided"
    link = _link(tenant, payload)
    connection = get_connection()
    sent = 0
    for user in recipients:
        with language(languages[user.pk]):
            context = {
                "user": user,
                "notice": payload["notice"],
                "kind": payload["kind"],
                "count": payload["count"],
                "name": payload["name"],
                "total": ", ".join(f"{amount} {currency}" for amount, currency in payload["totals"]),
                "asked_by": _who(payload["requested_by"] or payload["placed_by"]),
                "decided_by": _who(payload["decided_by"]),
                "reason": payload["reason"],
                "expires": expires.strftime("%Y-%m-%d %H:%M") if expires else "",
                "zone": zone.key,
                "link": link,
                "tenant_name": live.name,
                "sandbox": payload["sandbox"],
            }
        try:
            staff_email_send(user=user, template=template, context=context, language=languages[user.pk],
                             connection=connection)  # fmt: skip
        except OSError:
            # One unreachable mailbox or a mail server hiccup must not stop the others; the task is not retried
            # (a retry would email again whoever already got it).
            extra = {"event": "approval.notice_failed", "notice": payload["notice"], "object_id": payload["id"]}
            logger.warning("approval notice not sent", extra=extra)
            continue
        sent += 1
    logger.info("approval notice sent", extra={"event": f"approval.notice_{payload['notice']}",
                                                "object_id": payload["id"], "count": sent})  # fmt: skip
    return sent
