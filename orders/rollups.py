"""The maintained rollups behind the dashboard and reports: reads, and folding the triggers' deltas in.

Database triggers (migration 0004) append delta rows in the very transaction that inserts a reward, changes its
status or posts a capture or refund, so a rollup can never miss a change, whichever code path (ORM, COPY, a
bulk INSERT ... SELECT) made it. Writers only ever INSERT deltas: no order waits on a shared counter row, and
no lock order is added to the ledger's. `rollups_compact` (beat, every minute) folds the deltas into the
rollup tables in one statement per table; readers sum rollup + pending deltas in one query, so what they read
is exact at their snapshot whether or not a compaction ran.

Deltas and rollups are bucketed by UTC hour (migration 0010), so a reader regroups them into the days of any
whole-hour zone. Reads are GROUP BYs over at most (hours × statuses × currencies) rows: flat in the number of rewards
(bench/search.py measures it at 1k and 1M rewards).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.db import connection as db_connection
from core.db_routing import read_connection
from core.rollups import fold_deltas, try_fold_lock

from .models import RewardStat, RewardStatDelta, RewardStatTotal, SpendStat, SpendStatDelta

# One compaction at a time per schema (core.rollups.try_fold_lock): a second would only wait for the first's row locks.
_COMPACT_LOCK = 0x5257_5354  # "RWST"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # slots of the totals' safety net count from here


def rollups_compact() -> tuple[int, int]:
    """Fold this schema's pending reward and spend deltas into their rollups (core.rollups.fold_deltas);
    returns (reward deltas, spend deltas) folded, (0, 0) when another compaction is running."""
    with transaction.atomic():
        if not try_fold_lock(_COMPACT_LOCK):
            return 0, 0
        rewards = fold_deltas(
            deltas=RewardStatDelta._meta.db_table,
            rollup=RewardStat._meta.db_table,
            keys=["hour", "status", "currency", "engaged"],
            sums=["rewards", "amount"],
            also=[(RewardStatTotal._meta.db_table, ["status", "currency", "engaged"])],
        )
        spend = fold_deltas(
            deltas=SpendStatDelta._meta.db_table,
            rollup=SpendStat._meta.db_table,
            keys=["hour", "currency", "program_id", "product_id", "department"],
            sums=["amount", "captures", "refunds"],
        )
        # Rows that netted to nothing (e.g. every reward of an hour moved on from `pending`) are dropped.
        RewardStat.objects.filter(rewards=0, amount=0).delete()
        RewardStatTotal.objects.filter(rewards=0, amount=0).delete()
    return rewards, spend


def reward_totals_rebuild() -> bool:
    """Recompute this schema's all-time totals from the hourly rollup under the compaction lock (nothing folds
    meanwhile, so the two agree exactly); False when a compaction holds the lock (the next run does it). Hourly
    by beat, in the schemas whose hours changed (tenants.due, kind `totals`: statement triggers on the hourly
    rollup, migration 0023) and at each schema's reward_totals_next_due: it corrects totals that a compaction by
    older code (a rolling deploy) folded into the hours only."""
    totals, hourly = RewardStatTotal._meta.db_table, RewardStat._meta.db_table
    with transaction.atomic():
        if not try_fold_lock(_COMPACT_LOCK):
            return False
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {totals}")
            cursor.execute(
                f"INSERT INTO {totals} (status, currency, engaged, rewards, amount) SELECT status, currency, "
                f"engaged, sum(rewards), sum(amount) FROM {hourly} GROUP BY 1, 2, 3"
            )
    return True


def reward_totals_next_due(*, retry: bool = False) -> datetime:
    """When this schema's totals are rebuilt next with no change to its hours (reward_totals_rebuild_task): now
    after a rebuild that found a compaction running (`retry`), else the schema's next slot of
    REWARD_TOTALS_RECOMPUTE_SECONDS — fixed per schema (a hash of its name), so the safety net for a write no
    trigger saw rebuilds an even share of the schemas each hour, and a schema noted in between keeps its slot."""
    now = timezone.now()
    if retry:
        return now
    period = timedelta(seconds=int(settings.REWARD_TOTALS_RECOMPUTE_SECONDS))
    phase = timedelta(seconds=zlib.crc32(db_connection.schema_name.encode()) % int(period.total_seconds()))
    return now + period - (now - _EPOCH - phase) % period  # exact (whole microseconds): the same slot each time


def rollups_next_due() -> datetime | None:
    """Now if this schema still has deltas to fold (a compaction was already running, or deltas arrived during
    this one), else None: rollups_compact_task visits again only when new deltas are noted."""
    from funds.models import LedgerDayStatDelta

    tables = [RewardStatDelta._meta.db_table, SpendStatDelta._meta.db_table, LedgerDayStatDelta._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + " OR ".join(f"EXISTS (SELECT 1 FROM {table})" for table in tables))
        row = cursor.fetchone()
    return timezone.now() if row and row[0] else None


def _range_sql(since: datetime | None, until: datetime | None) -> tuple[str, list[datetime]]:
    """WHERE clause for hours starting in [since, until) (None = unbounded), and its parameters."""
    clauses: list[str] = ["TRUE"]
    params: list[datetime] = []
    if since is not None:
        clauses.append("hour >= %s")
        params.append(since)
    if until is not None:
        clauses.append("hour < %s")
        params.append(until)
    return " AND ".join(clauses), params


def _folded(since: datetime | None, until: datetime | None) -> str:
    """The folded rollup to read for [since, until): the all-time totals (a few rows) when unbounded, else the
    hourly rows of the period."""
    return RewardStatTotal._meta.db_table if since is None and until is None else RewardStat._meta.db_table


def reward_counts_by_status(*, since: datetime | None = None, until: datetime | None = None) -> dict[str, int]:
    """Rewards created in [since, until) (hour boundaries; None = unbounded) per current status."""
    where, params = _range_sql(since, until)
    with read_connection(RewardStat).cursor() as cursor:  # a replica inside reads_from_replica()
        cursor.execute(
            f"SELECT status, sum(rewards) FROM (SELECT status, rewards FROM {_folded(since, until)} "
            f"WHERE {where} UNION ALL SELECT status, rewards FROM {RewardStatDelta._meta.db_table} "
            f"WHERE {where}) AS s GROUP BY status",
            params + params,
        )
        return {status: int(n) for status, n in cursor.fetchall() if n}


def reward_counts_by_engagement(
    *, since: datetime | None = None, until: datetime | None = None
) -> dict[tuple[str, int], int]:
    """Rewards created in [since, until) per (current status, engagement: models.Engagement)."""
    where, params = _range_sql(since, until)
    with read_connection(RewardStat).cursor() as cursor:  # a replica inside reads_from_replica()
        cursor.execute(
            f"SELECT status, engaged, sum(rewards) FROM (SELECT status, engaged, rewards FROM "
            f"{_folded(since, until)} WHERE {where} UNION ALL SELECT status, engaged, rewards FROM "
            f"{RewardStatDelta._meta.db_table} WHERE {where}) AS s GROUP BY status, engaged",
            params + params,
        )
        return {(status, int(engaged)): int(n) for status, engaged, n in cursor.fetchall() if n}


@dataclass(frozen=True)
class SpendRow:
    key: str  # the group: a program id, a product id, a currency, an ISO day or a department ("" = none)
    currency: str
    amount: Decimal
    captures: int
    refunds: int


# The expression each group reads; a day is the zone's (the one %s parameter, spend_grouped's `zone`).
SPEND_GROUPS = {"program": "program_id", "product": "product_id", "currency": "currency",
                "day": "(hour AT TIME ZONE %s)::date", "department": "department"}  # fmt: skip


def spend_grouped(
    *, group_by: str, since: datetime | None = None, until: datetime | None = None, zone: str = "UTC"
) -> list[SpendRow]:
    """Net spend (captures less refunds) posted in [since, until), per funding currency and `group_by` (days are
    those of the IANA `zone`)."""
    column = SPEND_GROUPS[group_by]
    where, params = _range_sql(since, until)
    columns = "currency, program_id, product_id, department, hour, amount, captures, refunds"
    with read_connection(SpendStat).cursor() as cursor:  # a replica inside reads_from_replica()
        cursor.execute(
            f"SELECT coalesce({column}::text, ''), currency, sum(amount), sum(captures), sum(refunds) FROM ("
            f"SELECT {columns} FROM {SpendStat._meta.db_table} WHERE {where} UNION ALL "
            f"SELECT {columns} FROM {SpendStatDelta._meta.db_table} WHERE {where}) AS s "
            "GROUP BY 1, 2 ORDER BY 2, 1",
            [*([zone] if group_by == "day" else []), *params, *params],
        )
        return [
            SpendRow(key=key, currency=currency, amount=amount, captures=int(captures), refunds=int(refunds))
            for key, currency, amount, captures, refunds in cursor.fetchall()
            if amount or captures or refunds
        ]
