"""Writing a bulk batch's rewards: one order per chunk of rows, set-based, with time-ordered ids.

batches.upload and batches.lifecycle validate and pay for the rows (one hold for the batch); these write what
order_create would write for them. order_create_for_batch_select does it in SQL from the rows where they are staged
(INSERT … SELECT: no Python per reward), for rewards without claim links or shipments; order_create_for_batch_rows
for any reward, as plain tuples COPYed per table (claim tokens are made and encrypted in Python).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from core import crypto
from core.bulk import copy_insert, insert_select
from core.errors import ApplicationError
from core.i18n import locale_choose
from funds.services import funds_hold_split_many, funds_hold_split_select

from .claim_tokens import (
    CLAIM_METHODS,
    claim_deadline,
    claim_token_hash,
    claim_token_new,
    claim_tokens_copy,
    gets_claim_link,
)
from .create import order_new, reward_fallback_locale
from .handoff import rewards_dispatch, shipment_hooks_required
from .models import OrderType, Reward, RewardEvent, RewardStatus
from .planning import PlannedReward

if TYPE_CHECKING:
    from collections.abc import Iterable

    from catalog.models import Product, ShippingMethod
    from funds.models import Hold
    from programs.models import Program

_BATCH_REWARD_COLUMNS = [
    "id", "order_id", "position", "status", "product_id", "product_snapshot", "amount", "currency", "charge_amount",
    "hold_id", "delivery_method", "recipient_name", "recipient_email", "recipient_phone", "country", "message",
    "sender_name", "deliver_at", "claim_token_hash", "claim_token_encrypted", "claim_expires_at", "person_id",
    "external_id", "metadata", "locale",
]  # fmt: skip


class BatchReward(NamedTuple):
    """A reward written for a bulk batch row: what the batch links its row to and dispatches after commit."""

    id: str  # canonical UUID text
    status: str
    delivery_method: str


def uuid7_bytes(count: int) -> bytes:
    """`count` time-ordered (version 7, RFC 9562) UUIDs, ascending, 16 bytes each, from one os.urandom call: 48
    bits of Unix milliseconds, an 18-bit counter (rand_a and the top of rand_b, RFC 9562 method 1), 56 random bits.

    Ids that arrive in order append to the right edge of each index that holds them (rewards, holds and their
    references, reward events, batch rows) instead of dirtying a random page each: about half the database
    time of a bulk chunk's inserts. And uuid.uuid4() with psycopg's UUID dumper cost ~4 µs per id."""
    if count >= 1 << 18:
        raise ValueError("at most 262,143 ids per call")
    raw = bytearray(os.urandom(16 * count))
    for index, byte in enumerate((time.time_ns() // 1_000_000).to_bytes(6, "big")):
        raw[index::16] = bytes((byte,)) * count
    raw[6::16] = bytes(0x70 | i >> 14 for i in range(count))  # version 7, counter bits 17-14
    raw[7::16] = bytes(i >> 6 & 0xFF for i in range(count))  # counter bits 13-6
    raw[8::16] = bytes(0x80 | i & 0x3F for i in range(count))  # RFC 9562 variant, counter bits 5-0
    return bytes(raw)


def uuid7_texts(count: int) -> list[str]:
    """uuid7_bytes as canonical UUID text."""
    t = uuid7_bytes(count).hex()
    return [f"{t[i : i + 8]}-{t[i + 8 : i + 12]}-{t[i + 12 : i + 16]}-{t[i + 16 : i + 20]}-{t[i + 20 : i + 32]}"
            for i in range(0, 32 * count, 32)]  # fmt: skip


def product_snapshot_json(product: Product) -> str:
    """A reward's product snapshot (what order_create copies from the catalogue), as JSON text."""
    return json.dumps(
        {
            "brand": product.brand.name,
            "brand_slug": product.brand.slug,
            "redemption_url": product.brand.redemption_url,
            "name": product.name,
            "type": product.type,
            "supplier": product.supplier.code if product.supplier_id else "",
            **({"discount": discount} if (discount := product.discount_snapshot()) else {}),
        }
    )


def order_create_for_batch_rows(
    *,
    order_type: str,
    currency: str,
    planned: list[PlannedReward],
    source_hold: Hold | None,
    program: Program | None = None,
    fx_rate: Decimal | None = None,
    po_number: str = "",
    api_key_id: str = "",
    created_by_email: str = "",
) -> list[BatchReward]:
    """One order for rewards already validated and paid for by a bulk batch's hold (batches.lifecycle).

    Call inside the chunk's transaction. Writes the order, then its rewards as order_create does (same
    columns, claim links, reward events, shipments) but set-based: plain tuples COPYed per table, no model
    instance per row. Each reward gets its own hold (so a failure releases exactly its own), carved out of
    `source_hold` last (funds_hold_split_many: the ledger accounts stay locked from there until commit); a
    zero-cost reward gets none (and a chunk of only such rows needs no `source_hold`).
    Dispatch follows the commit. No `order.created` event: a batch announces itself once, with
    `batch.completed`.
    """
    order = order_new(
        order_type=order_type,
        planned=planned,
        currency=currency,
        program=program,
        fx_rate=fx_rate,
        po_number=po_number,
        api_key_id=api_key_id,
        created_by_email=created_by_email,
    )
    order.save(force_insert=True)
    now = timezone.now()
    default_message = program.default_message if program else ""
    default_sender = program.sender_name if program else ""
    fallback_locale = reward_fallback_locale(program)
    snapshots: dict[uuid.UUID, str] = {}
    locales: dict[str | None, str] = {}  # a recipient's locale as given → the one chosen (a file has a few)
    rewards: list[tuple[Any, ...]] = []  # COPY rows: database values in _BATCH_REWARD_COLUMNS order
    holds: list[tuple[str, str, Decimal]] = []
    shipments: list[tuple[str, str, ShippingMethod, dict[str, str] | None]] = []
    token_hashes: list[str] = []
    created: list[BatchReward] = []
    held = Decimal(0)
    ids = iter(uuid7_texts(2 * len(planned) + sum(1 for item in planned if item.shipping_method is not None)))
    for item in planned:
        spec, product = item.spec, item.product
        snapshot = snapshots.get(product.id)
        if snapshot is None:
            snapshot = snapshots[product.id] = product_snapshot_json(product)
        reward_id, next_id = next(ids), next(ids)
        charge = item.charge + item.fx_fee + item.shipping
        hold_id = None if product.zero_cost else next_id
        status = RewardStatus.SCHEDULED if spec.deliver_at else RewardStatus.PENDING
        token_hash = token_encrypted = ""
        expires_at = None
        if gets_claim_link(order_type=order_type, delivery_method=item.delivery_method, product_type=product.type):
            token = claim_token_new()
            token_hash, token_encrypted = claim_token_hash(token), crypto.encrypt(token)
            expires_at = claim_deadline(now=now, program=program, deliver_at=spec.deliver_at, claim_by=spec.claim_by)
            token_hashes.append(token_hash)
        recipient = spec.recipient or {}
        given_locale = recipient.get("locale")
        locale = locales.get(given_locale)
        if locale is None:
            locale = locales[given_locale] = locale_choose(given_locale) or fallback_locale
        rewards.append(
            (reward_id, order.id, item.position, status, product.id, snapshot, spec.amount, product.currency, charge,
             hold_id, item.delivery_method, recipient.get("name", "").strip(),
             (recipient.get("email") or "").strip().lower(), (recipient.get("phone") or "").strip(),
             (item.address or {}).get("country") or (spec.country or "").upper(), spec.message or default_message,
             spec.sender_name or default_sender, spec.deliver_at, token_hash, token_encrypted, expires_at,
             item.person_id, spec.external_id, json.dumps(spec.metadata) if spec.metadata else "{}", locale)
        )  # fmt: skip
        if hold_id is not None:
            holds.append((hold_id, f"reward:{reward_id}", charge))
            held += charge
        if item.shipping_method is not None:
            shipments.append((next(ids), reward_id, item.shipping_method, item.address))
        created.append(BatchReward(reward_id, status, item.delivery_method))
    copy_insert(Reward, _BATCH_REWARD_COLUMNS, rewards)
    copy_insert(
        RewardEvent,
        ["reward_id", "from_status", "to_status", "note"],
        ((reward.id, "", reward.status, "created") for reward in created),
    )
    if shipments:
        shipment_hooks_required().copy(shipments)
    if token_hashes:
        claim_tokens_copy(token_hashes)
    if holds:
        if source_hold is None:
            raise ApplicationError("Priced rows without their batch's funds hold.", code="ledger")
        funds_hold_split_many(hold=source_hold, parts=holds, total=held)  # funds last
    due = [reward for reward in created if reward.status == RewardStatus.PENDING]
    if due:
        transaction.on_commit(lambda: rewards_dispatch(due))
    return created


class RewardRows(NamedTuple):
    """The rows to write rewards for, where they already are: a SELECT (with its parameters) giving one row per
    reward, with the columns REWARD_ROW_COLUMNS lists. Values are what order_create would store, normalised as
    the rows were validated (batches.csvfile: trimmed names, lower-cased emails); empty message and sender name
    take the program's, the locale as given ('' for none) is chosen here."""

    sql: str
    params: list[Any]


REWARD_ROW_COLUMNS = (
    "slot",  # where the reward's ids are in the caller's `ids` (1, 2, …: unique, ascending in file order)
    "sort_key",  # file order: the rewards' positions follow it
    "product_id",  # text
    "amount",  # face value
    "delivery_method",
    "charge",  # in the order's currency: face value converted, FX fee and shipping
    "recipient_name", "recipient_email", "recipient_phone",  # '' for none
    "country", "message", "sender_name",  # '' or null for none
    "deliver_at", "person_id", "external_id",
    "metadata",  # jsonb or null
    "locale",  # as given, '' for none
)  # fmt: skip


def reward_id_sql(ids: str, slot: str) -> str:
    """SQL for the id of the reward in `slot` of the UUIDs `ids` (a bytea expression, uuid7_bytes(2 × slots)): the
    (2·slot − 1)th UUID; its hold's is the (2·slot)th. What a caller computes to link its rows to their rewards."""
    return f"encode(substring({ids} FROM {slot} * 32 - 31 FOR 16), 'hex')::uuid"


def _hold_id_sql(ids: str, slot: str) -> str:
    return f"encode(substring({ids} FROM {slot} * 32 - 15 FOR 16), 'hex')::uuid"


class BatchSelectResult(NamedTuple):
    order_id: uuid.UUID
    written: int  # rewards written
    then_rows: int  # rows the caller's `then` statement returned


def order_create_for_batch_select(
    *,
    order_type: str,
    currency: str,
    rows: RewardRows,
    ids: bytes,
    count: int,
    totals: tuple[Decimal, Decimal, Decimal, Decimal],
    held: Decimal,
    products: dict[str, Product],
    locales: Iterable[str],
    source_hold: Hold | None,
    then: tuple[str, list[Any]] | None = None,
    program: Program | None = None,
    fx_rate: Decimal | None = None,
    api_key_id: str = "",
    created_by_email: str = "",
) -> BatchSelectResult:
    """order_create_for_batch_rows for rewards without claim links or shipments, in SQL: the `count` rewards of
    `rows` (orders.bulk.RewardRows), their `created` events and (then) their holds are each written by one
    `INSERT … SELECT`, without a Python object per reward. Their ids come from `ids` (uuid7_bytes, two per slot:
    reward_id_sql), so the caller knows each row's reward without reading it back.

    The caller sums the rows: `totals` are the order's (charge, FX fees, shipping, total), `held` what the
    priced rows cost (their holds come out of `source_hold`). `products` holds every product the rows name,
    `locales` every locale they give ('' included if some give none). `then`: an optional data-modifying
    statement (with its parameters) run by the same statement, that returns one row per row it handled (a
    batch marks its rows done with it, each linked to its reward by reward_id_sql: no join).
    Anything the rows do not match (fewer rewards than `count`, a product or locale not given, a reward that
    would need a claim link) raises before commit, and the caller's transaction rolls back.
    """
    if order_type == OrderType.PHYSICAL:
        raise ValueError("physical rewards need shipments: order_create_for_batch_rows")
    order = order_new(
        order_type=order_type, planned=[], totals=totals, currency=currency, program=program, fx_rate=fx_rate,
        api_key_id=api_key_id, created_by_email=created_by_email,
    )  # fmt: skip
    order.save(force_insert=True)
    fallback_locale = reward_fallback_locale(program)
    given = sorted(set(locales))
    reward_head, reward_constants = insert_select(
        Reward,
        {name: f"v.{name}" for name in (
            "id", "order_id", "position", "status", "product_id", "product_snapshot", "amount", "currency",
            "charge_amount", "hold_id", "delivery_method", "recipient_name", "recipient_email", "recipient_phone",
            "country", "message", "sender_name", "deliver_at", "person_id", "external_id", "metadata", "locale",
        )},
    )  # fmt: skip
    event_head, event_constants = insert_select(
        RewardEvent, {"reward_id": "v.id", "from_status": "''", "to_status": "v.status", "note": "'created'"}
    )
    then_sql, then_params = then or ("SELECT 1 WHERE false", [])
    # No joins: products and locales are looked up by their place in small arrays, and `then` finds each row's
    # reward id from its slot. A join's estimate (one row, once the statistics saw most batch rows done) made
    # PostgreSQL rescan `v` for each row `then` updated: seconds per chunk.
    sql = f"""
    WITH src AS (
        SELECT s.*, (row_number() OVER (ORDER BY s.sort_key))::int AS ord,
               array_position(%s::uuid[], s.product_id::uuid) AS p, array_position(%s::text[], s.locale) AS l
        FROM ({rows.sql}) AS s
    ),
    v AS MATERIALIZED (
        SELECT {reward_id_sql("%s::bytea", "src.slot")} AS id,
               %s::uuid AS order_id, src.ord - 1 AS position,
               CASE WHEN src.deliver_at IS NULL THEN %s ELSE %s END AS status,
               src.product_id::uuid AS product_id, (%s::jsonb[])[src.p] AS product_snapshot, src.amount,
               (%s::text[])[src.p] AS currency, src.charge AS charge_amount,
               CASE WHEN NOT (%s::boolean[])[src.p]
                    THEN {_hold_id_sql("%s::bytea", "src.slot")} END AS hold_id,
               src.delivery_method, src.recipient_name, src.recipient_email, src.recipient_phone,
               coalesce(src.country, '') AS country, coalesce(nullif(src.message, ''), %s) AS message,
               coalesce(nullif(src.sender_name, ''), %s) AS sender_name, src.deliver_at, src.person_id,
               src.external_id, coalesce(src.metadata, '{{}}'::jsonb) AS metadata, (%s::text[])[src.l] AS locale,
               src.delivery_method = ANY(%s::text[]) AND (%s = %s OR (%s::text[])[src.p] = 'choice') AS needs_link,
               src.p IS NOT NULL AND src.l IS NOT NULL AS matched
        FROM src
    ),
    new_rewards AS ({reward_head} FROM v),
    events AS ({event_head} FROM v),
    then_rows AS ({then_sql})
    SELECT count(*) FILTER (WHERE matched), count(*) FILTER (WHERE needs_link), (SELECT count(*) FROM then_rows),
           count(*) FILTER (WHERE hold_id IS NOT NULL),
           coalesce(sum(charge_amount) FILTER (WHERE hold_id IS NOT NULL), 0),
           array_agg(id) FILTER (WHERE status = %s), array_agg(delivery_method) FILTER (WHERE status = %s)
    FROM v
    """
    listed = list(products.values())
    types = [product.type for product in listed]
    params: list[Any] = [
        [str(product.id) for product in listed], given, *rows.params,
        ids, order.id, RewardStatus.PENDING, RewardStatus.SCHEDULED,
        [product_snapshot_json(product) for product in listed], [product.currency for product in listed],
        [bool(product.zero_cost) for product in listed], ids,
        program.default_message if program else "", program.sender_name if program else "",
        [locale_choose(code) or fallback_locale for code in given],
        list(CLAIM_METHODS), order_type, OrderType.LINK, types,
        *reward_constants, *event_constants, *then_params,
        RewardStatus.PENDING, RewardStatus.PENDING,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written, with_links, then_rows, priced_count, priced, due_ids, due_methods = cursor.fetchone()
    if written != count or with_links:
        raise RuntimeError(
            f"{written} of {count} rewards matched their products and locales, {with_links} would need claim "
            "links; the chunk is rolled back"
        )
    if priced != held:
        raise RuntimeError(f"the rows cost {priced}, {held} expected; the chunk is rolled back")
    if held:
        if source_hold is None:
            raise ApplicationError("Priced rows without their batch's funds hold.", code="ledger")
        funds_hold_split_select(  # funds last
            hold=source_hold,
            parts_sql=f"SELECT hold_id, 'reward:' || id, charge_amount FROM {Reward._meta.db_table} "
            "WHERE order_id = %s AND hold_id IS NOT NULL",
            params=[order.id],
            total=held,
            count=priced_count,
        )
    if due_ids:
        due = [BatchReward(str(i), RewardStatus.PENDING, m) for i, m in zip(due_ids, due_methods, strict=True)]
        transaction.on_commit(lambda: rewards_dispatch(due))
    return BatchSelectResult(order.id, written, then_rows)
