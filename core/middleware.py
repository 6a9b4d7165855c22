"""One structured log line per request, with request id, tenant and key id (never the query string)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from core import context, db_routing
from core.metrics import REQUEST_LATENCY, REQUESTS

logger = logging.getLogger("rewards_portal.request")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Any other method (a client may send anything) is one metrics series, not one per spelling.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # our own attribute; HttpRequest declares none
        context.clear()
        context.bind(request_id=request_id)
        db_routing.request_started()
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        match = getattr(request, "resolver_match", None)
        elapsed = time.perf_counter() - started
        # The route pattern keeps the label set bounded (a 404 for any unknown path is one series).
        route = (match.route if match else None) or "<unmatched>"
        method = request.method if request.method in _METHODS else "other"
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        REQUEST_LATENCY.labels(method, route).observe(elapsed)
        logger.info(
            "request",
            extra={
                "method": request.method,
                # the route pattern, not the path: paths can hold claim tokens
                "route": match.route if match else None,
                "path": request.path if match is None or "<" not in (match.route or "") else None,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        context.clear()
        return response
