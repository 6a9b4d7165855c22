"""The one base class for tenant API endpoints: credential, tenant schema, scopes and rate limit.

Every `/api/v1/` endpoint except the token exchange derives from these (a test walks the URLconf to
check). The tenant schema was set by `tenants.middleware.TenantRoutingMiddleware` from the credential.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from rest_framework import generics
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission, OperandHolder, SingleOperandHolder
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from api import schema  # noqa: F401 — registers the OpenAPI extension for our credentials, with the views
from api.permissions import HasScope, HasTenantCredential
from api.throttling import ApiKeyRateThrottle
from api.write_audit import api_actor, api_write_audit
from audit.actors import Actor
from audit.services import audit_rows_recorded
from core.db_routing import reads_from_replica
from tenants.authentication import ApiKeyAuthentication

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class TenantAPIMixin:
    authentication_classes: Sequence[type[BaseAuthentication]] = [ApiKeyAuthentication]
    # APIView's own type (a class, or classes combined with & | ~): an override must keep it, the list is mutable.
    permission_classes: Sequence[type[BasePermission] | OperandHolder | SingleOperandHolder] = [
        HasTenantCredential,
        HasScope,
    ]
    throttle_classes: Sequence[type[BaseThrottle]] = [ApiKeyRateThrottle]
    required_scope: str | None = None  # default: read for safe methods, write otherwise

    def initial(self, request, *args, **kwargs):
        request.audit_rows_before = audit_rows_recorded()
        super().initial(request, *args, **kwargs)
        # Defence in depth: the view must run in the credential's schema, whatever happened before.
        if connection.schema_name != request.tenant.schema_name:
            connection.set_tenant(request.tenant)
        if request.method in BODY_METHODS:
            # Parse the body now, after the credential, scope and rate checks and before the view runs: a
            # malformed, too deep or too large body is a 400/413 whatever the view would have looked up first,
            # and it is refused before any write.
            request.data  # noqa: B018

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        # Every successful API write, in the key's schema: the service's own row, else a generic one.
        api_write_audit(
            request=request,
            response=response,
            rows_before=getattr(request, "audit_rows_before", None),
            rows_after=audit_rows_recorded(),
        )
        # Tenant data, claim links and codes are never for a shared cache or the browser's disk.
        response.setdefault("Cache-Control", "no-store")
        return response

    @property
    def tenant(self):
        return self.request.tenant

    @property
    def actor(self) -> Actor:
        """Who the audit log names for this request's writes: pass it to services that audit."""
        # The mixin is only used with APIView subclasses, whose dispatch sets self.request.
        return api_actor(self.request)  # type: ignore[attr-defined]


class TenantAPIView(TenantAPIMixin, APIView):
    pass


class TenantListAPIView(TenantAPIMixin, generics.ListAPIView):
    def list(self, request, *args, **kwargs):
        # A list page may be a replica's (DATABASE_REPLICA_URLS): milliseconds behind, and never after this
        # request wrote (core/db_routing.py).
        with reads_from_replica():
            return super().list(request, *args, **kwargs)


class TenantRetrieveAPIView(TenantAPIMixin, generics.RetrieveAPIView):
    pass
