"""django-tenants' backend, minus the `SET search_path` round trip when the session already has the tenant's path.

django-tenants forgets the session's search_path on every `set_tenant()`, and the routing middleware calls it
twice per request (public at the start and the end, the key's tenant in between), so with TENANT_LIMIT_SET_CALLS
every API request still sent `SET search_path = "<tenant>", "public"` as a round trip of its own, though the
connection (kept for CONN_MAX_AGE) had the same path from the previous request of the same tenant.

Here the path the session is known to hold is kept apart from django-tenants' "set for the current schema" flag:
`set_tenant()` to a schema whose path the session already holds sends nothing. The knowledge is dropped wherever
django-tenants drops the flag for a reason other than a schema switch: the connection closed, a rollback or a
savepoint rollback (a `SET` is transactional, and Django rolls back a failed COMMIT), a failed `SET`, and code
that ran its own `SET LOCAL search_path` (tenants.provisioning, tenants.migrating reset the flag to None).

Not used behind PgBouncer in transaction mode (`DB_TRANSACTION_POOLING`): there the session is not the server's,
and tenants.pooled_backend sets the path inside every statement instead.

With prepared statements (DB_PREPARED_STATEMENTS), a statement whose result columns changed type since it was
prepared (a migration widened a column under a running process) fails with "cached plan must not change result
type". Inside a transaction the rollback makes psycopg forget its prepared statements; outside one it would fail
the same way until the connection is replaced (DB_CONN_MAX_AGE), so the connection is closed there and the next
statement runs on a new one.

Statements run inside core.db.custom_plans() are sent unprepared (the psycopg cursor class, `_CustomPlansCursor`):
PostgreSQL plans each for its own values. A server-side cursor (`.iterator()`) is another class, and psycopg never
prepares its DECLARE.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.postgresql.base import CursorDebugWrapper, ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.db.utils import NotSupportedError
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from django_tenants.utils import get_limit_set_calls

from core.db import custom_plans_wanted

STALE_PLAN = "cached plan must not change result type"

logger = logging.getLogger(__name__)


class _ClosesOnStalePlan(CursorWrapper):
    """Every entry point that can run a prepared statement: `execute`, `executemany` (psycopg prepares its statement
    on the first call, whatever the threshold) and `callproc` (a SELECT through psycopg's execute). A server-side
    cursor (`.iterator()`) needs nothing: psycopg never prepares its DECLARE, so it is planned afresh each time."""

    @contextmanager
    def _closing_on_stale_plan(self) -> Iterator[None]:
        try:
            yield
        except NotSupportedError as exc:
            if STALE_PLAN in str(exc):
                # A column's type changed under this process (a migration): seen in the logs, not only as a 500.
                closing = self.db.get_autocommit() and not self.db.in_atomic_block
                logger.warning(
                    "prepared statement outdated by a column type change",
                    extra={"connection_closed": closing, "schema": getattr(self.db, "schema_name", "")},
                )
                if closing:
                    self.db.close()  # every prepared statement goes with it
            raise

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self._closing_on_stale_plan():
            return super().execute(sql, params)

    def executemany(self, sql: Any, param_list: Any) -> Any:
        with self._closing_on_stale_plan():
            return super().executemany(sql, param_list)

    def callproc(self, procname: Any, params: Any = None, kparams: Any = None) -> Any:
        with self._closing_on_stale_plan():
            return super().callproc(procname, params, kparams)


class _DebugClosesOnStalePlan(_ClosesOnStalePlan, CursorDebugWrapper):
    pass


class _CustomPlansCursor(ServerBindingCursor):
    """Django's server-binding cursor (the one used with DB_PREPARED_STATEMENTS): inside core.db.custom_plans() a
    statement is sent unprepared, so PostgreSQL plans it for its own values. psycopg's own `prepare=False`, given at
    the psycopg cursor rather than by overriding Django's CursorWrapper, whose body would have to be copied."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        if prepare is None and custom_plans_wanted():
            prepare = False
        return super().execute(query, params, prepare=prepare, binary=binary)  # type: ignore[misc]  # untyped in django-stubs


# Django's choice of psycopg cursor (by OPTIONS["server_side_binding"]) -> ours; its client-side binding cursor
# never prepares, and is kept.
_CURSOR_FACTORIES: dict[type, type] = {ServerBindingCursor: _CustomPlansCursor}


class DatabaseWrapper(TenantDatabaseWrapper):
    _rp_switching = False  # inside set_tenant(): its reset of the flag says nothing about the session
    _rp_session_paths: list[str] | None = None  # the search_path the session holds, None when not known

    @property
    def search_path_set_schemas(self) -> list[str] | None:
        return self.__dict__.get("_rp_set_schemas")

    @search_path_set_schemas.setter
    def search_path_set_schemas(self, value: list[str] | None) -> None:
        self.__dict__["_rp_set_schemas"] = value
        if not self._rp_switching:
            self._rp_session_paths = value

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["cursor_factory"] = _CURSOR_FACTORIES.get(params["cursor_factory"], params["cursor_factory"])
        return params

    def make_cursor(self, cursor: Any) -> CursorWrapper:
        return _ClosesOnStalePlan(cursor, self)

    def make_debug_cursor(self, cursor: Any) -> CursorWrapper:
        return _DebugClosesOnStalePlan(cursor, self)

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        self._rp_switching = True
        try:
            super().set_tenant(tenant, include_public)
        finally:
            self._rp_switching = False
        held = self._rp_session_paths
        if held is not None and get_limit_set_calls() and self._get_cursor_search_paths() == held:
            self.__dict__["_rp_set_schemas"] = held  # django-tenants' _handle_search_path then sends nothing
