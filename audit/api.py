"""Audit rows for API writes, recorded by the one base API class (api.views.TenantAPIMixin)."""

from __future__ import annotations

import logging

from rest_framework.permissions import SAFE_METHODS

from tenants.middleware import client_ip

from .services import audit_record

logger = logging.getLogger(__name__)


def api_write_audit(*, request, response) -> None:
    """Record a non-safe request answered 2xx: actor `api-key:<key_id>`, action `<METHOD> /<route>`.

    Only the response's `id` is kept, never its body (a reveal answers with a code). Idempotent replays are
    not new writes and are skipped. A failure here is logged, not raised: the write itself has committed.
    """
    key = getattr(request, "api_key", None)
    if request.method in SAFE_METHODS or key is None or not 200 <= response.status_code < 300:
        return
    if response.get("Idempotent-Replayed") == "true":
        return
    match = getattr(request, "resolver_match", None)
    route = f"/{match.route}" if match is not None else request.path
    body = getattr(response, "data", None)
    object_id = body.get("id") if isinstance(body, dict) else None
    if object_id is None and match is not None and match.kwargs:
        object_id = next(iter(match.kwargs.values()))
    # "/api/v1/orders/<uuid:order_id>/cancel" → "orders"
    segments = [s for s in route.split("/") if s and s not in ("api", "v1") and not s.startswith("<")]
    try:
        audit_record(
            actor=f"api-key:{key.key_id}",
            action=f"{request.method} {route}",
            object_type=segments[0] if segments else "",
            object_id=object_id or "",
            data={"status": response.status_code},
            ip=client_ip(request._request),
        )
    except Exception:
        logger.exception("audit record failed", extra={"event": "audit.failed", "route": route})
