"""Reads for tenants: the tenant whose schema is in use, and the loop over every tenant schema that periodic tasks
run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from django.db.models import QuerySet
from django_tenants.utils import tenant_context

from core.db import connection

from .models import Tenant, TenantStatus


def tenant_current() -> Tenant:
    """The tenant row of the schema the connection is set to (a tenant's live schema or its sandbox twin)."""
    # Inside a tenant schema the connection holds its Tenant row (set_tenant, tenant_context); django-tenants
    # holds a FakeTenant only for a schema set by name (public), where no caller of this runs.
    return cast(Tenant, connection.tenant)


def for_each_tenant(*, active_only: bool = True) -> Iterator[Tenant]:
    """Yield every tenant row with a schema (live tenants and the sandbox twins used at least once, in pk order),
    each inside its schema. A twin never used has no schema, and nothing to sweep.

    The suspended-tenant rule: a suspended tenant (both its schemas are suspended together) starts no new
    work, so sweeps that start work (scheduled rewards, stale batches) pass `active_only=True`. Sweeps that
    finish what was already committed (webhook deliveries owed for events that happened) pass
    `active_only=False`: suspension stops the tenant acting, not us keeping our word to its receivers.
    """
    for tenant in tenant_schemas_list(active_only=active_only):
        with tenant_context(tenant):
            yield tenant


def tenant_schemas_list(*, active_only: bool = True) -> QuerySet[Tenant]:
    """The tenant rows for_each_tenant visits, without entering their schemas (pk order)."""
    tenants: QuerySet[Tenant] = Tenant.objects.with_schema().order_by("pk")
    if active_only:
        tenants = tenants.filter(status=TenantStatus.ACTIVE)
    return tenants
