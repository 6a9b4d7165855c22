"""django-tenants behind PgBouncer in transaction pooling mode: the tenant schema is chosen inside every transaction.

django-tenants selects the schema with a session-level `SET search_path`. Behind a pooler in transaction mode the
client's session is not the server's: each transaction (each statement, in autocommit) may run on another server
connection, so the `SET` lands on one and the query on another, which may carry another client's tenant. Here no
session state is ever set; instead every statement is sent as

    SET LOCAL search_path = "<schema>", "public"; <statement>

in one simple-protocol query (Django's psycopg cursors bind parameters client-side, so they use it). Code that sets
`SET LOCAL search_path` itself (provisioning a new schema) keeps it for the rest of its transaction. PostgreSQL
runs a multi-statement query as one (implicit) transaction, or inside the open one: the pooler keeps it on one
server connection, and `SET LOCAL` ends with that transaction. Inside `atomic()` every statement repeats it, so a
rolled-back savepoint cannot undo it. `COPY` and `executemany` (which cannot carry a second statement) get the
`SET LOCAL` as a statement of their own in the same transaction.

Also: no server-side prepared statements (Django's default `prepare_threshold=None`; PgBouncer < 1.21 cannot
route them) and no server-side cursors (`DISABLE_SERVER_SIDE_CURSORS`, set by the settings).
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql.base import Cursor as DjangoCursor
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from psycopg import sql
from psycopg.pq import TransactionStatus

# Django's psycopg cursor (a psycopg ClientCursor); the stubs do not describe it as one.
_Cursor: Any = DjangoCursor


class TransactionPooledCursor(_Cursor):
    """Prefixes each statement with its connection's `SET LOCAL search_path` (see the module docstring)."""

    def _set_local(self) -> str | None:
        return getattr(self.connection, "rp_set_local", None)

    def execute(self, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        prefix = self._set_local()
        if prefix is None:
            return super().execute(query, params, *args, **kwargs)
        if isinstance(query, sql.Composable):
            query = query.as_string(self.connection)
        elif isinstance(query, bytes):
            query = query.decode()
        if query.lstrip()[:21].upper() == "SET LOCAL SEARCH_PATH":
            # The caller picks the schema for the rest of its transaction (tenants.provisioning): respect it.
            self.connection.rp_local_override = True
            return super().execute(query, params, *args, **kwargs)
        if getattr(self.connection, "rp_local_override", False):
            if self.connection.info.transaction_status == TransactionStatus.INTRANS:
                return super().execute(query, params, *args, **kwargs)
            self.connection.rp_local_override = False  # that transaction ended, and its SET LOCAL with it
        super().execute(prefix + query, params, *args, **kwargs)
        self.nextset()  # the statement's own result, not the SET's
        return self

    def executemany(self, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
        prefix = self._set_local()
        if prefix is None:
            return super().executemany(query, params_seq, *args, **kwargs)
        with self.connection.transaction():  # a savepoint inside atomic(), else its own transaction
            super().execute(prefix.rstrip("; "))
            return super().executemany(query, params_seq, *args, **kwargs)

    def copy(self, statement: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        prefix = self._set_local()
        if prefix is not None:
            if self.connection.autocommit:
                raise RuntimeError("COPY under transaction pooling must run inside transaction.atomic()")
            super().execute(prefix.rstrip("; "))
        return super().copy(statement, params, *args, **kwargs)


class DatabaseWrapper(TenantDatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params["cursor_factory"] = TransactionPooledCursor
        return params

    def _handle_search_path(self, cursor: Any = None) -> None:
        """Instead of `SET search_path` on the session: remember the `SET LOCAL` each statement carries."""
        if not self.schema_name:
            self.connection.rp_set_local = None
            return
        paths = self._get_cursor_search_paths()
        quoted = ", ".join(sql.Identifier(path).as_string(self.connection) for path in paths)
        self.connection.rp_set_local = f"SET LOCAL search_path = {quoted}; "
        self.search_path_set_schemas = paths
