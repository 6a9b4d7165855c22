"""Routes every request to a schema: the API by its credential, the portal by its host name.

- `/api/…` (except the schema and docs): `Authorization: Bearer <key or token>` → ApiKey → tenant schema
  (a `rp_test_` key lands in the sandbox twin, provisioned first if this is its first use). A bad credential is
  answered here with 401/403 problem+json; repeated guesses are answered 429 instead, never a valid credential
  (tenants/authentication.py).
- `<slug>.<PORTAL_DOMAIN>`: that tenant's portal; the bare PORTAL_DOMAIN (or 127.0.0.1) is the public
  schema (operator console, admin, health). An unknown portal host is a 404.
A bare tenant header is never trusted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import Http404

from core import context
from core.problems import problem_response

from .authentication import (
    GUESS_CODES,
    address_failures_exceeded,
    credential_failure_record,
    presented_key_id,
    too_many_failures_response,
)
from .models import Domain
from .services import CredentialError, credential_authenticate, tenant_sandbox_ensure

PUBLIC_API_PATHS = ("/api/v1/schema/", "/api/docs/", "/api/v1/tokens")


def client_ip(request) -> str:
    """REMOTE_ADDR, or the address TRUSTED_PROXY_COUNT hops back in X-Forwarded-For."""
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return request.META.get("REMOTE_ADDR", "")


class TenantRoutingMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        connection.set_schema_to_public()
        request.tenant = None
        request.api_key = None
        try:
            response = self._route(request)
            if response is None:
                response = self.get_response(request)
        finally:
            connection.set_schema_to_public()
        return response

    def _route(self, request):
        path = request.path
        if path.startswith("/api/"):
            if path.startswith(PUBLIC_API_PATHS):
                return None
            return self._route_api(request)
        if path.startswith(("/healthz", "/readyz", "/metrics", "/static/")):
            return None
        return self._route_portal(request)

    def _route_api(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        ip = client_ip(request)
        if not header:  # the base API view answers 401 problem+json, or 429 to an address over its guess budget
            retry_after = address_failures_exceeded(ip)
            return too_many_failures_response(retry_after) if retry_after else None
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            error = CredentialError("Use `Authorization: Bearer <api key or access token>`.")
        else:
            try:
                key = credential_authenticate(credential=credential, client_ip=ip)
            except CredentialError as exc:
                error = exc
            else:
                if not key.tenant.schema_ready:  # a test key's twin not yet provisioned: its first use
                    tenant_sandbox_ensure(tenant=key.tenant)
                request.api_key = key
                request.tenant = key.tenant
                connection.set_tenant(key.tenant)
                context.bind(tenant=key.tenant.schema_name, key_id=key.key_id)
                return None
        if error.code in GUESS_CODES:
            retry_after = credential_failure_record(client_ip=ip, key_id=presented_key_id(credential))
            if retry_after:
                return too_many_failures_response(retry_after)
        return problem_response(
            status=error.status, code=error.code, detail=error.detail, headers={"WWW-Authenticate": "Bearer"}
        )

    def _route_portal(self, request):
        host = request.get_host().split(":")[0].lower()
        if host in (settings.PORTAL_DOMAIN, "127.0.0.1", "localhost", "[::1]", "testserver"):
            request.tenant = connection.tenant  # django-tenants' stand-in for the public schema
            return None  # public schema: operator console, admin, recipient pages
        domain = Domain.objects.select_related("tenant").filter(domain=host).first()
        if domain is None:
            raise Http404(f"No portal at {host}")
        if request.path.startswith("/admin/"):
            raise Http404("The operator admin lives on the public host only")
        request.tenant = domain.tenant
        connection.set_tenant(domain.tenant)
        context.bind(tenant=domain.tenant.schema_name)
        return None
