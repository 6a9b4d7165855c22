"""Funds test fixtures: tests run in tenant A's live schema (rolled back after each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import tenant_context


@pytest.fixture
def in_tenant_a(tenant_a) -> Iterator[None]:
    with tenant_context(tenant_a):
        yield
