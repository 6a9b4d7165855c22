"""Reads for tenants: the loop over every tenant schema that periodic tasks run."""

from __future__ import annotations

from collections.abc import Iterator

from django_tenants.utils import tenant_context

from .models import Tenant, TenantStatus


def for_each_tenant(*, active_only: bool = True) -> Iterator[Tenant]:
    """Yield every tenant row (live tenants and their sandbox twins, in pk order), each inside its schema.

    The suspended-tenant rule: a suspended tenant (both its schemas are suspended together) starts no new
    work, so sweeps that start work (scheduled rewards, stale batches) pass `active_only=True`. Sweeps that
    finish what was already committed (webhook deliveries owed for events that happened) pass
    `active_only=False`: suspension stops the tenant acting, not us keeping our word to its receivers.
    """
    tenants = Tenant.objects.order_by("pk")
    if active_only:
        tenants = tenants.filter(status=TenantStatus.ACTIVE)
    for tenant in tenants:
        with tenant_context(tenant):
            yield tenant
