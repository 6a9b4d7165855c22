"""Bulk batch processing: a confirmed batch's rows become orders and rewards, chunk after chunk, through orders.

Each chunk is one transaction that claims the next pending rows (FOR UPDATE SKIP LOCKED: two chunks of one batch
never take the same row), creates their orders and rewards, moves exactly their charges from the batch hold to
per-reward holds and marks the rows done (in SQL from the staged rows where no reward needs a claim link or
shipment: no Python object per row). Several chunks of one batch run at once (BATCH_PARALLEL_CHUNKS tasks):
they meet only on the batch hold's row, which each locks for its last statement until its commit, so one
chunk's COMMIT (a WAL flush of the chunk's ~15 MB, half of a chunk's time on a slow disk) overlaps the next
chunk's CPU. A chunk that dies rolls back whole and its rows are claimed again; a chunk that runs twice finds its
rows done. After each chunk what it committed is added to the batch's counters (a short transaction of their
own, under the batch lock); the chunk that finds no pending row left recounts them from the rows and finishes
the batch (batches.lifecycle.batch_finish).
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.errors import ApplicationError, NotFoundError

from .kinds import batch_kind_handler
from .lifecycle import batch_finish, batch_lock, batch_transition
from .models import BATCH_ACTIVE_STATES, Batch, BatchHold, BatchKind, BatchRow, BatchRowStatus, BatchStatus

if TYPE_CHECKING:
    from catalog.models import Product, ShippingMethod
    from funds.models import Hold
    from orders.planning import PlannedReward

# Rows per chunk transaction: ~0.4 s on a quiet machine, ~3 MB peak for a digital chunk written in SQL (~15 MB
# through Python tuples), bench/bulk.py.
CHUNK = 5000

_gc_lock = threading.Lock()
_gc_pausers = 0  # chunks of this process running with the cyclic garbage collector paused
_gc_was_enabled = True  # whether the first of them found it on


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a chunk runs (the last chunk of the process to end turns it on).

    A chunk keeps ~40,000 new containers alive until it ends (rows, planned rewards, COPY tuples), none of them
    cyclic: refcounting frees them all. Left on, the collector ran dozens of young-generation passes and a full
    pass of the worker's heap every few chunks over them, about a third of a chunk's Python CPU (bench/bulk.py:
    51 → 34 ms per 1,000 rows). Other threads of the process run without it for the chunk's ~0.5 s too.
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        _gc_pausers += 1
        if _gc_pausers == 1:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def batch_process(*, batch_id: Any, max_seconds: float | None = None) -> str:
    """Create the batch's orders chunk after chunk until done or `max_seconds` pass.

    Returns "done" (batch finished), "more" (time is up, rows remain) or "idle" (not confirmed/processing).
    """
    deadline = time.monotonic() + (settings.BATCH_TASK_SECONDS if max_seconds is None else max_seconds)
    while True:
        outcome = batch_process_chunk(batch_id=batch_id)
        if outcome != "more" or time.monotonic() >= deadline:
            return outcome


def batch_process_chunk(*, batch_id: Any, chunk: int = CHUNK) -> str:
    """One chunk in one transaction: the next `chunk` pending rows (those no other chunk holds) become orders and
    rewards (or failed rows), their charges move from the batch hold to per-reward holds; then the progress is
    recorded. The call that finds no row left finishes the batch."""
    batch = Batch.objects.select_related("program").filter(pk=batch_id).first()
    if batch is None or batch.status not in BATCH_ACTIVE_STATES:
        return "idle"
    if batch.kind == BatchKind.PEOPLE or batch_kind_handler(batch.kind) is not None:
        return _kind_chunk_locked(batch_id, chunk)
    try:
        with _gc_paused(), transaction.atomic():
            claimed = _chunk_claim(batch, chunk)
            if claimed:
                handled, failed = _chunk_write(batch, claimed)
    except ApplicationError as exc:
        if exc.code != "invalid_state":
            raise
        return "idle"  # the batch was canceled meanwhile and its hold released: this chunk sends nothing
    if not claimed:
        return _progress_record(batch_id, finish=True)
    return _progress_record(
        batch_id, finish=False, done=(handled + failed, failed, max(group.last_row for group in claimed))
    )


def _chunk_write(batch: Batch, claimed: list[_ClaimedGroup]) -> tuple[int, int]:
    """The claimed rows' orders and rewards (one order per order type and funding currency), or their failure
    when their product can no longer be ordered: (rows that became rewards, rows failed).

    Orders whose rewards need no claim link and no shipment (a digital send by email, SMS or API: the common
    bulk file) are written in SQL from the staged rows (_create_order_select); the others through Python
    tuples (_create_order_rows: claim tokens are made and encrypted per reward)."""
    from catalog.models import Product
    from orders.claim_tokens import gets_claim_link
    from orders.models import OrderType

    products = {
        str(p.id): p
        for p in Product.objects.select_related("brand", "supplier").filter(id__in={g.product_id for g in claimed})
    }
    holds = {i.currency: i.hold for i in BatchHold.objects.select_related("hold").filter(batch=batch)}
    orders: dict[tuple[str, str], list[_ClaimedGroup]] = defaultdict(list)
    failed: list[tuple[list[int], str]] = []
    for group in claimed:
        product = products.get(group.product_id)
        if product is None or not product.can_be_ordered:
            name = product.name if product else group.product_id
            failed.append((group.ids, f"{name} could no longer be ordered when this row was sent."))
            continue
        orders[(group.order_type, group.currency)].append(group)
    handled = 0
    for (order_type, currency), groups in orders.items():
        # No hold for a currency whose rows are all zero-cost (batches.lifecycle holds nothing for 0).
        hold = holds.get(currency)
        in_python = order_type == OrderType.PHYSICAL or any(
            group.shipped
            or gets_claim_link(order_type=order_type, delivery_method=group.delivery_method,
                               product_type=products[group.product_id].type)
            for group in groups
        )  # fmt: skip
        if in_python:
            handled += _create_order_rows(batch, order_type, currency, groups, products, hold)
        else:
            handled += _create_order_select(batch, order_type, currency, groups, products, hold)
    _mark_failed(failed)
    return handled, sum(len(ids) for ids, _ in failed)


# A batch's progress, recounted from its rows: right whatever chunks ran, died or overlapped (~30 ms of
# PostgreSQL CPU at 100,000 rows, so once at the end, not after every chunk).
_PROGRESS_SQL = """
SELECT count(*) FILTER (WHERE status <> 'pending'), count(*) FILTER (WHERE status = 'failed'),
       coalesce(max(row_number) FILTER (WHERE status <> 'pending'), 0), count(*) FILTER (WHERE status = 'pending')
FROM {table} WHERE batch_id = %s
"""


def _progress_record(batch_id: Any, *, finish: bool, done: tuple[int, int, int] = (0, 0, 0)) -> str:
    """Under the batch lock, the heartbeat and the counters: after a chunk, what it committed is added (`done`:
    rows handled, failed, its last row number); when `finish` (a chunk found no row left), they are recounted
    from the rows and the batch finished if none is pending any more (rows a running chunk holds are still
    pending: that chunk finishes it). A chunk whose worker died between its commit and this call is missing from
    the counters until that recount."""
    with transaction.atomic():
        try:
            batch = batch_lock(batch_id)
        except NotFoundError:  # deleted meanwhile
            return "idle"
        if batch.status not in BATCH_ACTIVE_STATES:
            return "idle"
        batch.heartbeat_at = timezone.now()
        fields = ["cursor_row", "rows_done", "rows_failed", "heartbeat_at"]
        if not finish:
            handled, failed, last_row = done
            batch.rows_done += handled
            batch.rows_failed += failed
            batch.cursor_row = max(batch.cursor_row, last_row)
            batch_transition(batch=batch, to=BatchStatus.PROCESSING, fields=fields)
            return "more"
        with connection.cursor() as cursor:
            cursor.execute(_PROGRESS_SQL.format(table=BatchRow._meta.db_table), [batch.id])
            batch.rows_done, batch.rows_failed, batch.cursor_row, pending = cursor.fetchone()
        if not pending:
            batch.save(update_fields=fields)
            batch_finish(batch=batch)
            return "done"
        batch_transition(batch=batch, to=BatchStatus.PROCESSING, fields=fields)
    return "idle"


def _kind_chunk_locked(batch_id: Any, chunk: int) -> str:
    """A people import's or a registered kind's chunk: one at a time per batch, under the batch lock."""
    with transaction.atomic():
        try:
            batch = batch_lock(batch_id)
        except NotFoundError:
            return "idle"
        if batch.status not in BATCH_ACTIVE_STATES:
            return "idle"
        if batch.kind == BatchKind.PEOPLE:
            from .people import people_chunk_apply

            return _kind_chunk(batch, people_chunk_apply(batch=batch, chunk=chunk))
        handler = batch_kind_handler(batch.kind)
        assert handler is not None
        batch_holds = {item.currency: item for item in BatchHold.objects.select_related("hold").filter(batch=batch)}
        return _kind_chunk(batch, handler.chunk(batch, chunk, batch_holds))


def _kind_chunk(batch: Batch, applied: tuple[int, int, int] | None) -> str:
    """Progress after a people import's or a registered kind's chunk (applied under the batch lock the caller
    holds): (rows handled, failed, last row number), or None when none was pending."""
    if applied is None:
        batch_finish(batch=batch)
        return "done"
    handled, failed, last_row = applied
    batch.cursor_row = last_row
    batch.rows_done += handled
    batch.rows_failed += failed
    batch.heartbeat_at = timezone.now()
    batch_transition(
        batch=batch, to=BatchStatus.PROCESSING, fields=["cursor_row", "rows_done", "rows_failed", "heartbeat_at"]
    )
    return "more"


class _ChunkRow(NamedTuple):
    """A pending batch row with its normalised `data` (csvfile.RowValidator) spread into typed columns."""

    id: int
    row_number: int
    currency: str
    external_id: str
    order_type: str
    product_id: str
    amount: Decimal
    face_currency: str
    delivery_method: str
    charge: Decimal
    fx_fee: Decimal
    recipient_name: str
    recipient_email: str | None
    recipient_phone: str | None
    message: str | None
    sender_name: str | None
    deliver_at: datetime | None
    fx_rate: str | None
    country: str | None
    shipping_method_id: str | None
    shipping: Decimal | None
    address: str | None  # JSON
    person_id: str | None  # the person the recipient fields were copied from at upload
    metadata: str | None  # JSON
    locale: str | None
    claim_by: datetime | None


# BatchRow.data's keys (csvfile.RowValidator), as _ChunkRow lists them, with their types: PostgreSQL unpacks them
# (jsonb_to_record), which costs less than decoding each row's JSON and parsing its amounts and dates in Python.
_ROW_DATA_COLUMNS = (
    "order_type text, product_id text, amount numeric, face_currency text, delivery_method text, charge numeric, "
    "fx_fee numeric, recipient_name text, recipient_email text, recipient_phone text, message text, "
    "sender_name text, deliver_at timestamptz, fx_rate text, country text, shipping_method_id text, "
    "shipping numeric, address jsonb, person_id text, metadata jsonb, locale text, claim_by timestamptz"
)


class _ClaimedGroup(NamedTuple):
    """Claimed rows (locked by this chunk) that share what decides their order and how they are written."""

    currency: str  # funding
    order_type: str
    product_id: str
    delivery_method: str
    shipped: bool  # with a shipping method
    charge: Decimal  # sums over the rows
    fx_fee: Decimal
    shipping: Decimal
    locales: list[str]  # as given, '' for none
    fx_rates: list[str]  # '1' for none
    ids: list[int]  # BatchRow ids, in file order
    first_row: int  # the lowest row number
    last_row: int  # the highest row number


def _chunk_claim(batch: Batch, chunk: int) -> list[_ClaimedGroup]:
    """The next pending rows no other chunk holds, locked, summed per _ClaimedGroup: those among the next `chunk`
    row numbers from the first one pending and free (fewer where the file had row errors or another chunk holds
    some). The rows stay in PostgreSQL: what is written for them is read from there (only their ids come back).

    A range of row numbers, not `ORDER BY row_number LIMIT chunk`: right after an upload the table's statistics
    do not know the batch's rows yet, and that plan read and sorted every remaining row of the batch for each
    chunk (quadratic in the file's size). The first free pending row is looked for just after the batch's cursor
    (the last row number a chunk recorded), where the free rows are, stepping over those a running chunk holds
    (SKIP LOCKED); then anywhere after it; then from the first row, which finds rows a chunk that died left
    pending behind the cursor. Looking from the first row each time read every row already done (~30 ms of
    PostgreSQL CPU per chunk near the end of 100,000 rows, and with the statistics of a fresh upload the plan
    read and sorted every row after it too, hence the bounded window first).
    """
    table = BatchRow._meta.db_table
    first_free = (
        f"SELECT row_number FROM {table} WHERE batch_id = %s AND status = %s AND row_number > %s {{bound}} "
        "ORDER BY batch_id, row_number LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    cursor_row = batch.cursor_row
    searches = [(first_free.format(bound="AND row_number <= %s"), [cursor_row, cursor_row + 2 * chunk])]
    searches += [(first_free.format(bound=""), [after]) for after in dict.fromkeys([cursor_row, 0])]
    with connection.cursor() as cursor:
        found = None
        for sql, bounds in searches:
            cursor.execute(sql, [batch.id, BatchRowStatus.PENDING, *bounds])
            found = cursor.fetchone()
            if found is not None:
                break
        if found is None:
            return []
        first = found[0]
        cursor.execute(
            f"WITH claimed AS (SELECT r.id, r.row_number, r.currency, r.data FROM {table} AS r "
            "WHERE r.batch_id = %s AND r.row_number >= %s AND r.row_number < %s AND r.status = %s "
            "ORDER BY r.row_number FOR UPDATE OF r SKIP LOCKED) "
            "SELECT c.currency, d.order_type, d.product_id, d.delivery_method, d.shipping_method_id IS NOT NULL, "
            "sum(d.charge), sum(d.fx_fee), coalesce(sum(d.shipping), 0), array_agg(DISTINCT coalesce(d.locale, '')), "
            "array_agg(DISTINCT coalesce(d.fx_rate, '1')), array_agg(c.id ORDER BY c.row_number), "
            "min(c.row_number), max(c.row_number) "
            "FROM claimed AS c CROSS JOIN LATERAL jsonb_to_record(c.data) AS d(order_type text, product_id text, "
            "delivery_method text, shipping_method_id text, charge numeric, fx_fee numeric, shipping numeric, "
            "locale text, fx_rate text) "
            "GROUP BY 1, 2, 3, 4, 5 ORDER BY min(c.row_number)",
            [batch.id, first, first + chunk, BatchRowStatus.PENDING],
        )
        return [_ClaimedGroup._make(values) for values in cursor.fetchall()]


def _chunk_rows(ids: list[int]) -> list[_ChunkRow]:
    """Claimed rows (by id) with their `data` spread into typed columns, in file order."""
    table = BatchRow._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.id, r.row_number, r.currency, r.external_id, d.* FROM {table} AS r "
            f"CROSS JOIN LATERAL jsonb_to_record(r.data) AS d({_ROW_DATA_COLUMNS}) "
            "WHERE r.id = ANY(%s) ORDER BY r.row_number",
            [ids],
        )
        return [_ChunkRow._make(values) for values in cursor.fetchall()]


def _planned(row: _ChunkRow, product: Product, methods: dict[str, ShippingMethod], *, position: int) -> PlannedReward:
    from orders.planning import PlannedReward, RewardInput

    address = json.loads(row.address) if row.address else None
    spec = RewardInput(
        product_id=row.product_id,
        amount=row.amount,
        currency=row.face_currency,
        delivery_method=row.delivery_method,
        recipient={
            "name": row.recipient_name,
            "email": row.recipient_email or "",
            "phone": row.recipient_phone or "",
            "locale": row.locale or "",
        },
        message=row.message or "",
        sender_name=row.sender_name or "",
        deliver_at=row.deliver_at,
        claim_by=row.claim_by,
        country=row.country,
        shipping_address=address,
        shipping_method_id=row.shipping_method_id,
        external_id=row.external_id,
        metadata=json.loads(row.metadata) if row.metadata else {},
    )
    return PlannedReward(
        position=position,
        spec=spec,
        product=product,
        delivery_method=row.delivery_method,
        charge=row.charge,
        fx_fee=row.fx_fee,
        shipping=row.shipping or Decimal(0),
        shipping_method=methods.get(row.shipping_method_id or ""),
        address=address,
        person_id=row.person_id,
    )


def _create_order_rows(
    batch: Batch,
    order_type: str,
    currency: str,
    groups: list[_ClaimedGroup],
    products: dict[str, Product],
    hold: Hold | None,
) -> int:
    """One order for the groups' rows, written through Python tuples (orders.bulk.order_create_for_batch_rows);
    each row is linked to its reward. Returns the number of rewards."""
    from catalog.models import ShippingMethod
    from orders.bulk import order_create_for_batch_rows

    rows = _chunk_rows([i for group in groups for i in group.ids])
    method_ids = {row.shipping_method_id for row in rows if row.shipping_method_id}
    methods = {str(m.id): m for m in ShippingMethod.objects.filter(id__in=method_ids)} if method_ids else {}
    planned = [_planned(row, products[row.product_id], methods, position=i) for i, row in enumerate(rows)]
    rates = {rate for group in groups for rate in group.fx_rates}
    rewards = order_create_for_batch_rows(
        order_type=order_type,
        currency=currency,
        planned=planned,
        source_hold=hold,
        program=batch.program,
        fx_rate=Decimal(rates.pop()) if len(rates) == 1 else None,
        api_key_id=batch.api_key_id,
        created_by_email=batch.created_by_email,
    )
    _mark_links([(row.id, reward.id) for row, reward in zip(rows, rewards, strict=True)])
    return len(rewards)


# The rows of a chunk's SQL-written order, as orders.bulk.RewardRows (REWARD_ROW_COLUMNS) reads them.
_REWARD_ROWS_SQL = f"""
SELECT r.row_number - %s + 1 AS slot, r.row_number AS sort_key, d.product_id, d.amount, d.delivery_method,
       d.charge + d.fx_fee + coalesce(d.shipping, 0) AS charge, d.recipient_name,
       coalesce(d.recipient_email, '') AS recipient_email, coalesce(d.recipient_phone, '') AS recipient_phone,
       coalesce(nullif(d.address ->> 'country', ''), upper(d.country)) AS country, d.message, d.sender_name,
       d.deliver_at, d.person_id::uuid AS person_id, r.external_id, d.metadata, coalesce(d.locale, '') AS locale
FROM {{table}} AS r CROSS JOIN LATERAL jsonb_to_record(r.data) AS d({_ROW_DATA_COLUMNS})
WHERE r.id = ANY(%s::bigint[]) AND r.id BETWEEN %s AND %s
"""

# Each row linked to its reward in the statement that writes the rewards (its id from the row's slot), only if it
# has none: the row → reward link is set exactly once. The id range lets PostgreSQL read just the chunk's rows.
_ROWS_DONE_SQL = """
UPDATE {table} AS b SET reward_id = {reward_id}, status = %s
WHERE b.id = ANY(%s::bigint[]) AND b.id BETWEEN %s AND %s AND b.reward_id IS NULL AND b.status = %s RETURNING 1
"""


def _create_order_select(
    batch: Batch,
    order_type: str,
    currency: str,
    groups: list[_ClaimedGroup],
    products: dict[str, Product],
    hold: Hold | None,
) -> int:
    """One order for the groups' rows (none with a claim link or shipment), written in SQL from the staged rows
    (orders.bulk.order_create_for_batch_select); the same statement marks the rows done. Returns the number of
    rewards."""
    from orders.bulk import RewardRows, order_create_for_batch_select, reward_id_sql, uuid7_bytes

    table = BatchRow._meta.db_table
    ids = [i for group in groups for i in group.ids]
    low, high = min(ids), max(ids)
    # Reward and hold ids by row number from the chunk's first (slot 1): at most `chunk` slots.
    first_row, last_row = min(g.first_row for g in groups), max(g.last_row for g in groups)
    uuids = uuid7_bytes(2 * (last_row - first_row + 1))
    rows_done = _ROWS_DONE_SQL.format(table=table, reward_id=reward_id_sql("%s::bytea", "(b.row_number - %s + 1)"))
    charge = sum((group.charge for group in groups), Decimal(0))
    fees = sum((group.fx_fee for group in groups), Decimal(0))
    shipping = sum((group.shipping for group in groups), Decimal(0))
    held = sum(
        (group.charge + group.fx_fee + group.shipping for group in groups if not products[group.product_id].zero_cost),
        Decimal(0),
    )
    rates = {rate for group in groups for rate in group.fx_rates}
    result = order_create_for_batch_select(
        order_type=order_type,
        currency=currency,
        rows=RewardRows(_REWARD_ROWS_SQL.format(table=table), [first_row, ids, low, high]),
        ids=uuids,
        count=len(ids),
        totals=(charge, fees, shipping, charge + fees + shipping),
        held=held,
        products={group.product_id: products[group.product_id] for group in groups},
        locales={locale for group in groups for locale in group.locales},
        source_hold=hold,
        then=(rows_done, [uuids, first_row, BatchRowStatus.CREATED, ids, low, high, BatchRowStatus.PENDING]),
        program=batch.program,
        fx_rate=Decimal(rates.pop()) if len(rates) == 1 else None,
        api_key_id=batch.api_key_id,
        created_by_email=batch.created_by_email,
    )
    if result.then_rows != len(ids):
        raise RuntimeError("batch rows already had rewards; the chunk is rolled back")
    return result.written


def _mark_links(links: list[tuple[int, str]]) -> None:
    """Link each row to its reward, only if it has none: the row → reward link is set exactly once.

    The id range lets PostgreSQL read just the chunk's rows (an index range) and join them to the values;
    without it the plan scanned every row of every batch for each chunk."""
    if not links:
        return
    table = BatchRow._meta.db_table
    ids = [i for i, _ in links]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET reward_id = v.reward_id, status = %s "
            "FROM unnest(%s::bigint[], %s::uuid[]) AS v(id, reward_id) "
            "WHERE r.id = v.id AND r.reward_id IS NULL AND r.status = %s AND r.id BETWEEN %s AND %s",
            [BatchRowStatus.CREATED, ids, [r for _, r in links], BatchRowStatus.PENDING, min(ids), max(ids)],
        )
        if cursor.rowcount != len(links):
            raise RuntimeError("batch rows already had rewards; the chunk is rolled back")


def _mark_failed(failed: list[tuple[list[int], str]]) -> None:
    """Rows whose product can no longer be ordered: failed, with the reason (one per group of rows)."""
    if not failed:
        return
    table = BatchRow._meta.db_table
    ids = [i for group, _ in failed for i in group]
    reasons = [why[:300] for group, why in failed for _ in group]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET status = %s, failure_reason = v.reason "
            "FROM unnest(%s::bigint[], %s::text[]) AS v(id, reason) WHERE r.id = v.id AND r.status = %s "
            "AND r.id BETWEEN %s AND %s",
            [BatchRowStatus.FAILED, ids, reasons, BatchRowStatus.PENDING, min(ids), max(ids)],
        )
