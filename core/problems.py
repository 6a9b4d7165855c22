"""RFC 9457 problem+json for every API error: `type`, `title`, `status`, `detail`, `code`, `retryable`, `errors`."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import ApplicationError

logger = logging.getLogger(__name__)
PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.rewards-portal.dev/errors/"

# DRF exception class -> (status, stable code, retryable)
_DRF_CODES: list[tuple[type[exceptions.APIException], str, bool]] = [
    (exceptions.NotAuthenticated, "unauthenticated", False),
    (exceptions.AuthenticationFailed, "invalid_credentials", False),
    (exceptions.PermissionDenied, "forbidden", False),
    (exceptions.NotFound, "not_found", False),
    (exceptions.MethodNotAllowed, "method_not_allowed", False),
    (exceptions.NotAcceptable, "not_acceptable", False),
    (exceptions.UnsupportedMediaType, "unsupported_media_type", False),
    (exceptions.Throttled, "rate_limited", True),
    (exceptions.ParseError, "malformed_request", False),
    (exceptions.ValidationError, "validation_error", False),
]


def problem(
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    retryable: bool = False,
    errors: dict[str, Any] | None = None,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem document; `extensions` are further members (RFC 9457 §3.2), e.g. OAuth's `error`."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
        "retryable": retryable,
    }
    if errors:
        body["errors"] = errors
    if extensions:
        body.update(extensions)
    return body


def problem_response(*, headers: dict[str, str] | None = None, **kwargs: Any) -> JsonResponse:
    """A problem+json response outside DRF (middleware, Django 404/500 handlers)."""
    response = JsonResponse(problem(**kwargs), status=kwargs["status"], content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten_detail(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten_detail(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten_detail(item) for item in detail]
    return str(detail)


UNAVAILABLE_RETRY_AFTER = 2  # seconds


def store_unavailable(exc: BaseException | None) -> bool:
    """A lost connection to PostgreSQL or Redis (a restart, a failover): the same request may succeed shortly.

    django.db.OperationalError also covers deadlocks and serialization failures, for which a retry is the
    answer as well. An exception raised after the connection broke mid-transaction rolled that transaction
    back, so nothing of the request was written, unless the commit itself was cut off; a retry with the same
    Idempotency-Key answers that case with the stored outcome.
    """
    import redis
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError))


def request_refusal(exc: BaseException | None) -> dict[str, Any] | None:
    """problem() arguments for Django's refusals of a request body (raised when a view or parser reads it):
    over DATA_UPLOAD_MAX_MEMORY_SIZE is 413, too many form fields or files 400; None for anything else.
    Django answered them with its HTML 400 page."""
    if isinstance(exc, RequestDataTooBig):
        return {
            "status": 413,
            "code": "payload_too_large",
            "detail": f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
        }
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return {"status": 400, "code": "malformed_request", "detail": "The request has too many fields or files."}
    return None  # other SuspiciousOperations go on to Django, which logs them, then to api_bad_request


# problem() arguments of that answer (503, with Retry-After: UNAVAILABLE_RETRY_AFTER).
UNAVAILABLE: dict[str, Any] = {
    "status": 503,
    "code": "service_unavailable",
    "detail": "A data store is briefly unavailable; retry shortly (with the same Idempotency-Key for writes).",
    "retryable": True,
}


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        body = problem(
            status=exc.status,
            code=exc.code,
            detail=exc.detail,
            title=exc.title,
            retryable=exc.retryable,
            errors=exc.errors,
        )
        headers.update(exc.headers)
    elif isinstance(exc, (Http404, exceptions.NotFound)):
        body = problem(status=404, code="not_found", detail="Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        body = problem(status=403, code="forbidden", detail="You do not have permission to do this.")
    elif isinstance(exc, exceptions.APIException):
        status, code, retryable = exc.status_code, "error", False
        for cls, drf_code, drf_retryable in _DRF_CODES:
            if isinstance(exc, cls):
                code, retryable = drf_code, drf_retryable
                break
        if isinstance(exc, exceptions.ValidationError):
            status = 422
            detail = exc.detail
            errors = _flatten_detail(detail if isinstance(detail, dict) else {"non_field_errors": detail})
            body = problem(
                status=status,
                code=code,
                detail="The request has invalid fields; see `errors`.",
                errors=errors,
            )
        else:
            body = problem(status=status, code=code, detail=str(exc.detail), retryable=retryable)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
    elif (refusal := request_refusal(exc)) is not None:
        body = problem(**refusal)
    elif store_unavailable(exc):
        logger.warning(
            "data store unavailable; answered 503", extra={"event": "store.unavailable", "error": type(exc).__name__}
        )
        body = problem(**UNAVAILABLE)
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    else:
        return None  # unexpected: Django's 500 handler answers (problem+json under /api/)

    set_rollback()
    response = Response(body, status=body["status"], headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    return response


def api_not_found(request, exception=None):
    return problem_response(status=404, code="not_found", detail="Not found.")


def api_bad_request(request, exception=None):
    """Django's handler400 under /api/: a body refused outside a DRF view, or a SuspiciousOperation."""
    return problem_response(
        **(
            request_refusal(exception)
            or {"status": 400, "code": "malformed_request", "detail": "The request was refused as malformed."}
        )
    )


def api_permission_denied(request, exception=None):
    return problem_response(status=403, code="forbidden", detail="You do not have permission to do this.")


def api_server_error(request):
    import sys

    if store_unavailable(sys.exc_info()[1]):  # raised outside a DRF view, e.g. by the tenant routing middleware
        return problem_response(headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}, **UNAVAILABLE)
    return problem_response(
        status=500,
        code="internal_error",
        detail="An unexpected error occurred; it has been logged. Retrying may help.",
        retryable=True,
    )
