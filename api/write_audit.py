"""The generic audit row of an API write, recorded by the one base API class (api.views.TenantAPIMixin)."""

from __future__ import annotations

import logging

from rest_framework.permissions import SAFE_METHODS

from audit.actors import Actor
from audit.models import AuditEvent
from audit.services import audit_event_new, audit_rows_added
from tenants.middleware import client_ip

logger = logging.getLogger(__name__)


def api_actor(request) -> Actor:
    """The request's API key as an audit actor (`api-key:<key_id>`, with the client's address)."""
    return Actor.api_key(request.api_key.key_id, ip=client_ip(request))


def api_write_audit(*, request, response, rows_before: int | None, rows_after: int) -> None:
    """Record a non-safe request answered 2xx: actor `api-key:<key_id>`, action `<METHOD> /<route>`.

    Skipped when the view's service recorded its own row (`rows_after > rows_before`: a webhook endpoint
    created, a secret rotated), which says more than the route; the generic row covers every other write.
    Only the response's `id` is kept, never its body (a reveal answers with a code). Idempotent replays are
    not new writes and are skipped. A failure here is logged, not raised: the write itself has committed.
    """
    key = getattr(request, "api_key", None)
    if request.method in SAFE_METHODS or key is None or not 200 <= response.status_code < 300:
        return
    if response.get("Idempotent-Replayed") == "true" or (rows_before is not None and rows_after > rows_before):
        return
    body = getattr(response, "data", None)
    object_id = body.get("id") if isinstance(body, dict) else None
    try:
        api_write_audit_event(request, object_id=object_id, status=response.status_code).save(force_insert=True)
        audit_rows_added(1)
    except Exception:
        logger.exception("audit record failed", extra={"event": "audit.failed", "route": _route(request)})


def api_write_audit_event(request, *, object_id: object, status: int) -> AuditEvent:
    """The generic row of a write answered `status` (unsaved): actor `api-key:<key_id>`, action `<METHOD> /<route>`,
    the route's first segment as the object type. A view whose service writes it in its own transaction (one round
    trip and one commit fewer: orders.create) hands the service this row's maker."""
    match = getattr(request, "resolver_match", None)
    route = _route(request)
    if object_id is None and match is not None and match.kwargs:
        object_id = next(iter(match.kwargs.values()))
    # "/api/v1/orders/<uuid:order_id>/cancel" → "orders"
    segments = [s for s in route.split("/") if s and s not in ("api", "v1") and not s.startswith("<")]
    return audit_event_new(
        actor=api_actor(getattr(request, "_request", request)),
        action=f"{request.method} {route}",
        object_type=segments[0] if segments else "",
        object_id=object_id or "",
        data={"status": status},
    )


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    return f"/{match.route}" if match is not None else request.path
