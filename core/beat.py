"""One beat sends the schedule, however many run: a PostgreSQL lock elects it, and each period is claimed once.

Run `celery beat` on two or more machines for availability (CELERY_BEAT_SCHEDULER points here). Each beat opens
one dedicated connection to PostgreSQL (not Django's, not through PgBouncer) and tries a session advisory lock
on it; the holder is the leader and sends the schedule, the others poll the lock every BEAT_STANDBY_POLL_SECONDS
and send nothing.

Why nothing is sent twice, whatever happens: a period is sent only after the beat has moved that entry's row in
`core_beat_entry` forward to the period, in one statement that also requires its own session to hold the lock
(INSERT … ON CONFLICT DO UPDATE … WHERE last_slot < period, AND the lock in pg_locks). PostgreSQL serialises
those statements, so a period has at most one claimer: two leaders at once (a partition, clock trouble, a bug)
still cannot both send it. Periods are numbered from the wall clock (floor((t - offset) / period), the offset
a fixed fraction of the period per entry name), so every beat numbers them alike, and a new leader continues
from the last claimed period instead of from its own start time. The claim is committed before the message is
published: a beat that dies in between loses that one period (the sweeps catch it up on the next), never sends
it twice.

Why the standby takes over:
- the leader's process dies (kill -9, OOM, a crash): the kernel closes its socket, PostgreSQL ends the session
  and so releases the lock at once; a standby gets it on its next poll;
- the leader's machine dies or is cut off from PostgreSQL: its session sits idle, and `idle_session_timeout`
  (BEAT_LEASE_SECONDS, set on the lock connection; the leader pings every third of it) ends it on the server,
  releasing the lock; a standby then gets it. Cut off, the old leader cannot claim anything (claims go through
  PostgreSQL), so it sends nothing; when it notices (its ping or claim fails) it closes the connection and
  becomes a standby;
- the leader cannot publish (the broker unreachable from its machine): it logs the error and steps down for a
  few polls, so a beat that can reach the broker may take over;
- PostgreSQL restarts: every session ends; whichever beat reconnects first leads and continues from the claimed
  periods; nothing is sent while the database is down (the sweeps would fail there anyway).
Redis keeps no beat state, so a Redis restarted empty changes nothing.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import socket
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import psycopg
from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import schedule as interval_schedule
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_tenants.utils import get_public_schema_name
from psycopg import sql

logger = logging.getLogger(__name__)

# pg_try_advisory_lock(LOCK_NAMESPACE, LOCK_BEAT): the (int4, int4) form, so pg_locks shows it as
# classid = LOCK_NAMESPACE, objid = LOCK_BEAT, objsubid = 2. Advisory locks are per database.
LOCK_NAMESPACE = 0x7270  # "rp"
LOCK_BEAT = 1


def entry_period(entry: ScheduleEntry) -> float | None:
    """Seconds between runs of an interval entry (`"schedule": 10.0`); None for crontab and solar schedules."""
    if type(entry.schedule) is interval_schedule:
        return float(entry.schedule.run_every.total_seconds())
    return None


def entry_offset(name: str, period: float) -> float:
    """Where in its period an entry fires: a fixed fraction of the period per name, the same on every beat, so
    entries with periods that divide each other do not all fire in the same second."""
    return (zlib.crc32(name.encode()) / 2**32) * period


class LeaderScheduler(Scheduler):  # type: ignore[misc]  # celery ships no types
    """Celery beat scheduler: sends only while it holds the PostgreSQL beat lock, each period once (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conn: psycopg.Connection[Any] | None = None
        self._leading = False
        self._pinged_at = 0.0  # monotonic time the last successful ping was sent (the lease runs from then)
        self._hold_off_until = 0.0  # after a failed publish: let another beat take the lock first
        self._last_error_logged = 0.0
        self._slots: dict[str, int] = {}  # entry name -> last claimed slot, as read from or written to the table
        self._leading_since = time.time()
        self.lease = float(settings.BEAT_LEASE_SECONDS)
        self.standby_poll = float(settings.BEAT_STANDBY_POLL_SECONDS)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        super().__init__(*args, **kwargs)

    # --- the lock -------------------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        db = settings.DATABASES["default"]
        if db["ENGINE"] == "tenants.pooled_backend":
            raise ImproperlyConfigured(
                "beat holds a session lock: run it with DATABASE_URL pointing at PostgreSQL itself and "
                "DB_TRANSACTION_POOLING unset (not through PgBouncer in transaction mode)"
            )
        conn = psycopg.connect(
            dbname=db["NAME"],
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=str(db["PORT"]) if db.get("PORT") else None,
            autocommit=True,
            connect_timeout=max(1, int(self.lease / 3)),
            application_name="rewards_portal beat",
            # A partitioned leader's query fails instead of hanging (Linux; ignored elsewhere).
            keepalives=1,
            keepalives_idle=max(1, int(self.lease / 3)),
            keepalives_interval=max(1, int(self.lease / 6)),
            keepalives_count=3,
            tcp_user_timeout=int(self.lease * 1000 / 2),
        )
        # The lease: the server ends this session (and so frees the lock) after BEAT_LEASE_SECONDS without a
        # statement. PostgreSQL 14 and later; on older servers the TCP keepalives above are all there is.
        try:
            conn.execute(sql.SQL("SET idle_session_timeout = {}").format(sql.Literal(int(self.lease * 1000))))
        except psycopg.errors.UndefinedObject:
            logger.warning("beat: this PostgreSQL has no idle_session_timeout; a lost leader is noticed by TCP only")
        return conn

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: the server ends the session either way
                self._conn.close()
        self._conn = None
        self._leading = False

    def _step_down(self, reason: str, *, hold_off: float = 0.0) -> None:
        if self._leading:
            logger.warning("beat: no longer leading (%s)", reason, extra={"event": "beat.standby", "reason": reason})
        self._close()
        self._hold_off_until = time.monotonic() + hold_off

    def _ensure_leader(self) -> bool:
        """True while this beat holds the lock with a live lease; tries to take it when not."""
        started = time.monotonic()
        if self._leading and started - self._pinged_at < self.lease / 3:
            return True
        if started < self._hold_off_until:
            return False
        try:
            if self._conn is None:
                self._conn = self._connect()
            if self._leading:
                self._conn.execute("SELECT 1")
                self._pinged_at = started
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, LOCK_BEAT]).fetchone()
            self._pinged_at = started
            if not (row and row[0]):
                return False
            self._leading = True
            self._leading_since = time.time()
            self._slots = dict(self._conn.execute(self._sql("SELECT name, last_slot FROM {table}")).fetchall())
        except psycopg.Error as exc:
            self._log_db_error(exc)
            self._step_down("database connection lost")
            return False
        logger.info("beat: leading (this beat sends the schedule)", extra={"event": "beat.leader"})
        return True

    def _log_db_error(self, exc: Exception) -> None:
        if time.monotonic() - self._last_error_logged > 60:  # once a minute while it lasts, not once per poll
            self._last_error_logged = time.monotonic()
            logger.warning("beat: database unavailable: %s", exc, extra={"event": "beat.db_error"})

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(table=sql.Identifier(get_public_schema_name(), "core_beat_entry"))

    # --- claiming and sending ---------------------------------------------------------------------------------

    def _claim(self, name: str, slot: int, *, expected: int | None, interval: bool) -> bool:
        """Move the entry's row to `slot` if nobody has (interval) or it is still at `expected` (others), and only
        while this session holds the lock. True: this beat, and no other, sends that period."""
        if interval:
            condition = "e.last_slot < EXCLUDED.last_slot"
        elif expected is not None:
            condition = "e.last_slot = %(expected)s"
        else:
            condition = "false"  # first run of a crontab entry: only an insert claims it
        statement = self._sql(
            "INSERT INTO {table} AS e (name, last_slot, claimed_at, claimed_by) "
            "SELECT %(name)s, %(slot)s, now(), %(by)s WHERE EXISTS ("
            "  SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            "  AND classid = %(k1)s AND objid = %(k2)s AND objsubid = 2 AND granted) "
            "ON CONFLICT (name) DO UPDATE SET last_slot = EXCLUDED.last_slot, claimed_at = EXCLUDED.claimed_at, "
            f"claimed_by = EXCLUDED.claimed_by WHERE {condition} RETURNING 1"
        )
        params = {"name": name, "slot": slot, "by": self.identity, "k1": LOCK_NAMESPACE, "k2": LOCK_BEAT}
        params["expected"] = expected
        assert self._conn is not None
        claimed = self._conn.execute(statement, params).fetchone() is not None
        if claimed:
            self._slots[name] = slot
            return True
        # Not ours: another beat claimed it, or this session no longer holds the lock.
        held = self._conn.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND classid = %s AND objid = %s AND objsubid = 2 AND granted",
            [LOCK_NAMESPACE, LOCK_BEAT],
        ).fetchone()
        if held is None:
            self._step_down("the beat lock is held by another session")
            return False
        row = self._conn.execute(self._sql("SELECT last_slot FROM {table} WHERE name = %s"), [name]).fetchone()
        if row is not None:
            self._slots[name] = row[0]
        return False

    def _due(self, entry: ScheduleEntry, now: float) -> tuple[int | None, int | None, float]:
        """(slot to claim or None, the slot the claim expects, seconds until the entry is next due)."""
        period = entry_period(entry)
        last = self._slots.get(entry.name)
        if period is not None and period > 0:
            offset = entry_offset(entry.name, period)
            slot = math.floor((now - offset) / period)
            next_in = (slot + 1) * period + offset - now
            return (slot if last is None or slot > last else None), last, next_in
        since = datetime.fromtimestamp(last if last is not None else self._leading_since, UTC)
        is_due, next_in = entry.schedule.is_due(since)
        return (int(now) if is_due else None), last, float(next_in)

    def _publish(self, entry: ScheduleEntry, slot: int) -> None:
        sending = copy.copy(entry)
        # One task id per period: a period's message is recognisable (and countable) in the broker.
        sending.options = {**entry.options, "task_id": f"beat:{entry.name}:{slot}"}
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        self.apply_async(sending, producer=self.producer, advance=False)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._ensure_leader():
            return self.standby_poll
        now = time.time()
        wait = self.lease / 3
        try:
            for entry in list(self.schedule.values()):
                slot, expected, next_in = self._due(entry, now)
                if slot is not None:
                    if self._claim(entry.name, slot, expected=expected, interval=entry_period(entry) is not None):
                        try:
                            self._publish(entry, slot)
                        except Exception as exc:  # SchedulingError, or a broker error
                            logger.error(
                                "beat: could not send %s: %s", entry.name, exc, extra={"event": "beat.send_failed"}
                            )
                            # That period is lost (the next one catches up); give a beat that can reach the
                            # broker the chance to lead.
                            self._step_down("could not publish", hold_off=3 * self.standby_poll)
                            return self.standby_poll
                    if not self._leading:
                        return self.standby_poll
                wait = min(wait, next_in)
        except psycopg.Error as exc:
            self._log_db_error(exc)
            self._step_down("database connection lost")
            return self.standby_poll
        return max(wait, 0.01)

    # --- Celery's scheduler interface ------------------------------------------------------------------------

    def setup_schedule(self) -> None:
        self.install_default_entries(self.data)
        self.merge_inplace(self.app.conf.beat_schedule)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._close()  # ends the session: a standby takes over at its next poll

    @property
    def info(self) -> str:
        return f"    . lock -> PostgreSQL advisory lock, lease {self.lease:g} s, standby poll {self.standby_poll:g} s"
