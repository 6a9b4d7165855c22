"""Error pages: problem+json under /api/, plain pages elsewhere."""

import sys

from django.http import HttpResponse
from django.views import defaults

from core.problems import (
    UNAVAILABLE_RETRY_AFTER,
    api_bad_request,
    api_not_found,
    api_permission_denied,
    api_server_error,
    store_unavailable,
)


def bad_request(request, exception=None):
    if request.path.startswith("/api/"):
        return api_bad_request(request, exception)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if request.path.startswith("/api/"):
        return api_permission_denied(request, exception)
    return defaults.permission_denied(request, exception)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return api_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return api_server_error(request)
    if store_unavailable(sys.exc_info()[1]):  # a database or Redis restart: a 503 the browser may retry
        response = HttpResponse(
            "Service briefly unavailable; please retry in a moment.", status=503, content_type="text/plain"
        )
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return response
    return defaults.server_error(request)
