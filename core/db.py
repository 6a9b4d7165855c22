"""`django.db.connection` as django-tenants extends it, typed: the schema and tenant it is set to, and the calls
that switch them.

django-tenants ships no types, and django-stubs types `django.db.connection` as Django's own wrapper, which has
none of these. `connection` here IS `django.db.connection` (the same per-thread proxy), only typed: import it from
here where the schema or tenant is read or switched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol, cast

from django.db import connection as _connection

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    class TenantDatabaseWrapper(BaseDatabaseWrapper):
        """What django_tenants.postgresql_backend.base.DatabaseWrapper adds that our code uses."""

        schema_name: str  # set to "public" when the connection is made, so never None once it exists
        tenant: SchemaTenant
        search_path_set_schemas: list[str] | None  # None: the next cursor sets the search_path again

        def set_tenant(self, tenant: SchemaTenant, include_public: bool = True) -> None: ...
        def set_schema(self, schema_name: str, include_public: bool = True, tenant_type: str | None = None) -> None: ...
        def set_schema_to_public(self) -> None: ...


class SchemaTenant(Protocol):
    """A tenant as the connection holds it: a `tenants.Tenant` row, or django-tenants' FakeTenant for a schema set
    by name (the public schema, a provisioning template). `tenants.selectors.tenant_current()` gives the row."""

    @property
    def schema_name(self) -> str: ...


connection = cast("TenantDatabaseWrapper", _connection)


_custom_plans: ContextVar[bool] = ContextVar("custom_plans", default=False)


@contextmanager
def custom_plans(*, when: bool = True) -> Iterator[None]:
    """Statements run inside are sent unprepared (psycopg's `prepare=False`, tenants.session_backend), so PostgreSQL
    plans each one for its own values, as without DB_PREPARED_STATEMENTS.

    For reads whose best plan depends on the values: a statement prepared on a connection may, from its sixth
    run on, get PostgreSQL's generic plan, made for average values. Measured at 200,000 rewards (40,000 orders): the
    rewards list by status walked the whole created_at index for a rare status (60-158 ms instead of 3-5 ms), the
    order search's OR of ids, external id, PO and metadata walked every order (19-36 ms instead of ~1 ms). Costs
    what planning costs (~0.1-0.5 ms a statement), which these statements paid anyway while PostgreSQL kept
    choosing custom plans for them.

    `when=False` changes nothing (an enclosing custom_plans() still holds): for a read that is a search or a filter
    by value only when the request asks for one."""
    if not when:
        yield
        return
    token = _custom_plans.set(True)
    try:
        yield
    finally:
        _custom_plans.reset(token)


def custom_plans_wanted() -> bool:
    """Whether the statement about to run is inside custom_plans()."""
    return _custom_plans.get()
