"""Accounts test fixtures: tests run in tenant A's live schema, with its first admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import tenant_context

from accounts.services import staff_create


@pytest.fixture
def in_tenant_a(tenant_a) -> Iterator[None]:
    with tenant_context(tenant_a):
        yield


@pytest.fixture
def admin(in_tenant_a):
    user, _ = staff_create(email="admin@alpha.test", role="admin", password="correct-horse-battery")
    return user
