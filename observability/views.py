"""GET /metrics: Prometheus text format, for a scraper holding METRICS_TOKEN or inside METRICS_ALLOWED_NETWORKS."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.networks import address_allowed
from observability.collectors import BusinessCollector
from observability.registry import process_registry
from tenants.middleware import client_ip

_business = CollectorRegistry(auto_describe=False)
_business.register(BusinessCollector())


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    return address_allowed(client_ip(request), settings.METRICS_ALLOWED_NETWORKS)


def metrics(request: HttpRequest) -> HttpResponse:
    """A 404 to anyone else (nothing says the endpoint exists), and when neither guard is configured; the method is
    checked after the guards, so a POST from outside is a 404 too, not a 405 that gives the endpoint away."""
    if not _allowed(request):
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    body = generate_latest(process_registry()) + generate_latest(_business)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
