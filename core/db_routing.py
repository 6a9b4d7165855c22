"""Read replicas: list pages, reports and exports read from a replica (DATABASE_REPLICA_URLS) when one is
configured; everything else, and every read after a write in the same request or task, reads the primary.

Code opts in with `reads_from_replica()` around what may be served slightly stale (raw SQL reads take their
cursor from `read_connection(Model)`) (a replica lags by the time
it takes to replay the primary's WAL, usually milliseconds). Inside it, the first write of the request — through
the ORM or raw SQL on the primary — sends every later read of the same request back to the primary
(read-your-writes), and so does an open transaction.
The replica connection is put in the same tenant schema as the primary connection before each read.
A replica that cannot be connected to is passed over for REPLICA_RETRY_SECONDS (its reads go to another replica or
the primary), with a warning (event `db.replica_unavailable`) each time it is found down.
A replica whose replay lag (measured on the replica, at most once per LAG_CHECK_SECONDS per process) exceeds
settings.REPLICA_MAX_LAG_SECONDS is passed over until a later check finds it within the limit, with a warning
(event `db.replica_lagging`) at each check that finds it behind; a lag query that fails counts as unreachable.
"""

from __future__ import annotations

import contextvars
import logging
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import DatabaseError, connections

if TYPE_CHECKING:
    from core.db import TenantDatabaseWrapper

logger = logging.getLogger(__name__)
REPLICA_RETRY_SECONDS = 30.0
_down_until: dict[str, float] = {}  # alias -> monotonic time before which it is not tried again (per process)
# A replica's measured lag is reused for this long: one lag query per alias per second per process, not a round trip
# before every read (a list request makes its routing decision several times, and a web process serves tens to
# hundreds a second). The query costs what a `SELECT 1` does (0.08 ms over a local socket, measured; a network
# round trip to a replica host more). A second is well under any useful REPLICA_MAX_LAG_SECONDS, so it delays
# detection by little.
LAG_CHECK_SECONDS = 1.0
_lag_checked: dict[str, tuple[float, float]] = {}  # alias -> (monotonic time the measurement expires, lag in s)
# The replica's replay lag, on the replica itself: how old the last commit it replayed is, while it has received WAL
# it has not replayed. Caught up (everything received is replayed; replay can be ahead of a walreceiver that just
# restarted at a segment's start) is 0 whatever that commit's age: an idle primary sends no commits, and its replica
# is not behind. NULL receive LSN: not streaming (a primary, or a standby restoring from the archive only), nothing
# to measure. pg_last_xact_replay_timestamp() is NULL until the standby has replayed a transaction since it
# started: unknown, 0. For the milliseconds between receiving and replaying the first WAL after a quiet spell this
# reads as the spell's length; a check that lands there, in a spell longer than the limit, passes the replica over
# for one LAG_CHECK_SECONDS. A standby cut off from its primary has replayed all it received and reads as 0: that is
# for monitoring the primary's pg_stat_replication to see (docs/scaling.md).
LAG_SQL = (
    "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() "
    "THEN 0 ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)

_replica_ok: contextvars.ContextVar[bool] = contextvars.ContextVar("rp_replica_ok", default=False)
# Set by the first write of a request (or task); RequestLogMiddleware and the task signals clear it.
_wrote: contextvars.ContextVar[bool] = contextvars.ContextVar("rp_db_wrote", default=False)


def replica_aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith("replica")]


def request_started() -> None:
    """A new request or task: no write seen yet."""
    _wrote.set(False)


@contextmanager
def reads_from_replica() -> Iterator[None]:
    token = _replica_ok.set(True)
    try:
        yield
    finally:
        _replica_ok.reset(token)


_READ_ONLY = ("SELECT", "SHOW", "SET", "WITH")
# A WITH whose CTEs write (WITH account AS (UPDATE …), moved AS (DELETE …) …: funds, rollups, core.bulk) is a write.
# A false match (a column named "update") only keeps reads on the primary.
_WRITES_IN_WITH = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)


def statement_writes(sql: str) -> bool:
    head = sql.lstrip()[:6].upper()
    if not head.startswith(_READ_ONLY):
        return True
    return head.startswith("WITH") and _WRITES_IN_WITH.search(sql) is not None


def _note_writes(execute: Any, sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Wraps every statement on the primary: anything but a read marks this request as having written."""
    if statement_writes(str(sql)):
        _wrote.set(True)
    return execute(sql, params, many, context)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.alias == "default":
        connection.execute_wrappers.append(_note_writes)


def writes_noted() -> None:
    """With replicas configured, note raw-SQL writes on the primary too (CoreConfig.ready calls this)."""
    if replica_aliases():
        from django.db.backends.signals import connection_created

        connection_created.connect(_on_connection_created, dispatch_uid="rp_note_writes")


def read_connection(model: type) -> Any:
    """The connection a raw-SQL read of `model`'s table goes to: a replica inside `reads_from_replica()` (the same
    rules as the ORM's reads: not after a write, not in a transaction), else the primary."""
    from django.db import DEFAULT_DB_ALIAS, router

    return connections[router.db_for_read(model) or DEFAULT_DB_ALIAS]


def _down(alias: str, exc: DatabaseError) -> None:
    _down_until[alias] = time.monotonic() + REPLICA_RETRY_SECONDS
    logger.warning(
        "replica %s unavailable, its reads go to the primary or another replica for %.0f s: %s",
        alias,
        REPLICA_RETRY_SECONDS,
        exc,
        extra={"event": "db.replica_unavailable", "alias": alias},
    )


def _reachable(alias: str, replica: Any) -> bool:
    try:
        replica.ensure_connection()
    except DatabaseError as exc:
        _down(alias, exc)
        return False
    return True


def replica_lag(replica: Any) -> float:
    """Seconds the replica's replay is behind the primary (LAG_SQL), 0 when caught up; raises DatabaseError."""
    with replica.cursor() as cursor:
        cursor.execute(LAG_SQL)
        lag = cursor.fetchone()[0]
    return float(lag or 0)


def _lagging(alias: str, replica: Any, now: float) -> bool:
    """Whether the replica is further behind than REPLICA_MAX_LAG_SECONDS (0: never), measured at most once per
    LAG_CHECK_SECONDS; a lag query that fails marks it down like a failed connection."""
    limit = float(settings.REPLICA_MAX_LAG_SECONDS)
    if limit <= 0:
        return False
    checked = _lag_checked.get(alias)
    if checked is not None and checked[0] > now:
        return checked[1] > limit
    try:
        lag = replica_lag(replica)
    except DatabaseError as exc:
        _lag_checked.pop(alias, None)
        replica.close()  # the retry after REPLICA_RETRY_SECONDS starts from a new connection
        _down(alias, exc)
        return True
    _lag_checked[alias] = (now + LAG_CHECK_SECONDS, lag)
    if lag > limit:
        logger.warning(
            "replica %s is %.1f s behind (limit %g s), its reads go to the primary or another replica",
            alias,
            lag,
            limit,
            extra={"event": "db.replica_lagging", "alias": alias, "lag_seconds": round(lag, 3)},
        )
        return True
    return False


class ReplicaRouter:
    """Before django-tenants' router in DATABASE_ROUTERS; answers None (no opinion) for migrations on the primary."""

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        if not _replica_ok.get() or _wrote.get():
            return None
        primary = cast("TenantDatabaseWrapper", connections["default"])
        if primary.in_atomic_block:  # a transaction reads its own writes and holds its locks on the primary
            return None
        now = time.monotonic()
        aliases = [alias for alias in replica_aliases() if _down_until.get(alias, 0.0) <= now]
        random.shuffle(aliases)
        for alias in aliases:
            replica = cast("TenantDatabaseWrapper", connections[alias])
            if not _reachable(alias, replica):
                continue
            if replica.schema_name != primary.schema_name:
                replica.set_schema(primary.schema_name)  # first: the lag query then sends the path the read needs
            if _lagging(alias, replica, now):
                continue
            return alias
        return None  # no replica reachable: the primary

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        _wrote.set(True)
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True  # replicas hold the same rows as the primary

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db.startswith("replica") else None
