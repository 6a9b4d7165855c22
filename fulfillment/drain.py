"""The fulfilment drain: claim a schema's due rewards in batches and take each batch through fulfilment together.

reward_fulfil (services.py) takes one reward through claim → issue → settle → deliver; at ~20 ms of worker CPU a
reward, 100,000 rewards took most of an hour. The drain runs the same four steps for a batch of rewards at once,
with the same states, leases and guards, so either path can finish what the other started:

  1. claim   — one statement: up to BATCH pending rewards → processing with a lease (FOR UPDATE SKIP LOCKED:
               two drains never claim the same reward), their timeline rows by COPY, their orders refreshed;
  2. issue   — one `issue_many` per product at its supplier (idempotent per reward id, no locks held);
  3. settle  — one transaction: the codes stored, the holds captured set-based (funds_hold_capture_many);
  4. deliver — one transaction: the rewards locked, every email sent over one kept-open mail connection, each
               accepted one noted at once (fulfillment.delivery.mail_accepted_note), then the deliveries
               recorded set-based (states, timeline, `reward.delivered` events, disclosure, orders), COMMIT.

A worker killed anywhere leaves rewards in `processing` whose lease runs out; the sweeper then hands each to
reward_fulfil, which finds its code stored and its hold captured (or redoes them, idempotently), and sends its
email unless a note says the mail server accepted it already. So a kill doubles a message only between the mail
server's acceptance and the note (one Redis round trip), never a whole batch (resilience/test_worker_kills.py).

What the drain does not batch it leaves to reward_fulfil: a supplier error (retried with backoff or failed, one
task per reward), a refused address, SMS and shipments (orders.handoff.DRAIN_METHODS), scheduled rewards.

Fairness: a drain works for at most DRAIN_SECONDS and, while its batches come back full, keeps one more drain of
its schema waiting in the queue (orders.handoff.fulfil_drain_publish allows one per schema). Drains of every
tenant take turns in the one queue, so a tenant's 100,000 rewards delay another tenant's single order by about
one drain's time, not by the whole send.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.db import DatabaseError, transaction
from django.utils import timezone

from core import crypto
from core.bulk import copy_insert
from core.db import connection
from core.faults import fault_point
from core.publish import task_publish
from funds.services import funds_hold_capture_many
from orders.handoff import DRAIN_METHODS, fulfil_drain_flag_clear, fulfil_drain_publish
from orders.lifecycle import order_refresh_status
from orders.models import DeliveryMethod, Order, Reward, RewardEvent, RewardStatus
from orders.selectors import reward_render, rewards_for_update
from webhooks.events import event_emit_many

from .delivery import (
    DeliveryFailed,
    mail_accepted,
    mail_accepted_note,
    mail_send,
    message_carries_code,
    reward_email_message,
)
from .services import reward_delivery_failed, reward_fail_locked
from .suppliers import IssuedCode, IssueRequest, SupplierError, SupplierRejected, adapter_for

logger = logging.getLogger(__name__)

BATCH = 50  # rewards per claim: ~60 ms of worker CPU and one mail connection's worth of sends (bench/delivery.py)
DRAIN_SECONDS = 2.0  # a drain's turn: then the next drain in the queue (maybe another tenant's) gets the thread
FULFIL_TASK = "fulfillment.tasks.reward_fulfil_task"
# After a mail server or connection error, the rewards it left unsent are retried (by the sweeper, through
# reward_fulfil) once their lease runs out: this long.
SEND_RETRY_SECONDS = 30

_CLAIM_SQL = """
WITH picked AS (
    SELECT id FROM {reward}
    WHERE status = 'pending' AND delivery_method = ANY(%(methods)s) AND attempts < %(max_attempts)s
    ORDER BY created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {reward} AS r
SET status = 'processing', attempts = r.attempts + 1, lease_expires_at = %(until)s, updated_at = %(now)s
FROM picked WHERE r.id = picked.id
RETURNING r.id, r.order_id, r.attempts
"""

_CODES_SQL = """
UPDATE {reward} AS r
SET code_encrypted = v.code, pin_encrypted = v.pin, code_last4 = v.last4, supplier_reference = v.ref
FROM unnest(%(ids)s::uuid[], %(codes)s::text[], %(pins)s::text[], %(last4s)s::text[], %(refs)s::text[])
     AS v(id, code, pin, last4, ref)
WHERE r.id = v.id AND r.code_encrypted = ''
"""

_DELIVERED_SQL = """
UPDATE {reward} AS r
SET status = 'delivered', updated_at = %(now)s, delivered_at = COALESCE(r.delivered_at, %(now)s),
    lease_expires_at = NULL,
    code_disclosed_at = CASE WHEN v.discloses AND r.code_disclosed_at IS NULL THEN %(now)s ELSE r.code_disclosed_at END
FROM unnest(%(ids)s::uuid[], %(discloses)s::boolean[]) AS v(id, discloses)
WHERE r.id = v.id AND r.status = 'processing'
"""

_NOTES: dict[str, str] = {DeliveryMethod.EMAIL: "emailed", DeliveryMethod.API: "issued", DeliveryMethod.LINK: "issued"}


def fulfil_drain(*, seconds: float = DRAIN_SECONDS) -> int:
    """Fulfil the schema's due rewards batch after batch for about `seconds`; returns how many were claimed."""
    fulfil_drain_flag_clear()  # commits from now on wake another drain; this one claims what came before
    started = time.monotonic()
    claimed_total = 0
    mail = _MailConnection()
    try:
        while True:
            claimed = _claim(limit=BATCH)
            claimed_total += len(claimed)
            if len(claimed) == BATCH:
                fulfil_drain_publish()  # more may be waiting: keep one drain of this schema in the queue
            if claimed:
                _fulfil(claimed, mail)
            if len(claimed) < BATCH or time.monotonic() - started > seconds:
                return claimed_total
    finally:
        mail.close()


def _claim(*, limit: int) -> list[str]:
    """Step 1: up to `limit` pending rewards → processing, leased, with their timeline rows; their orders
    refreshed (pending → processing). Returns their ids."""
    now = timezone.now()
    table = Reward._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                _CLAIM_SQL.format(reward=table),
                {
                    "methods": list(DRAIN_METHODS),
                    "max_attempts": settings.FULFILMENT_MAX_ATTEMPTS,
                    "limit": limit,
                    "until": now + timedelta(seconds=settings.FULFILMENT_LEASE_SECONDS),
                    "now": now,
                },
            )
            rows = cursor.fetchall()
        if not rows:
            return []
        copy_insert(
            RewardEvent,
            ["reward_id", "from_status", "to_status", "note", "created_at"],
            ((reward_id, RewardStatus.PENDING, RewardStatus.PROCESSING, f"attempt {attempts}", now)
             for reward_id, _, attempts in rows),
        )  # fmt: skip
        _orders_refresh({order_id for _, order_id, _ in rows})
    return [str(reward_id) for reward_id, _, _ in rows]


def _orders_refresh(order_ids: set[Any]) -> None:
    """The rewards' orders, in pk order (the lock order between orders), after their rewards (locked first)."""
    for order in Order.objects.filter(pk__in=order_ids).order_by("pk"):
        order_refresh_status(order=order)


def _fulfil(reward_ids: list[str], mail: _MailConnection) -> None:
    rewards = list(Reward.objects.select_related("order", "order__program").filter(pk__in=reward_ids).order_by("pk"))
    issued = _issue(rewards)
    fault_point("fulfil.issued")  # tests only (core/faults.py): a crash before the codes are recorded
    settled = _settle([reward.id for reward in rewards], issued)
    fault_point("fulfil.settled")  # tests only: a crash after the captures, before the emails go out
    if settled:
        _deliver(settled, mail)


# --- step 2: issue --------------------------------------------------------------------------------------


def _issue(rewards: list[Reward]) -> dict[str, IssuedCode]:
    """Codes for the rewards that need one, one issue_many per product. A reward whose supplier refused is
    failed (its hold released); one whose supplier failed retryably goes back to reward_fulfil's retries."""
    from catalog.models import Product

    wanted: dict[Any, list[Reward]] = defaultdict(list)
    for reward in rewards:
        if reward.product_snapshot.get("type") not in ("choice", "physical") and not reward.code_encrypted:
            wanted[reward.product_id].append(reward)
    products = {p.pk: p for p in Product.objects.select_related("supplier").filter(pk__in=list(wanted)).order_by()}
    codes: dict[str, IssuedCode] = {}
    for product_id, group in wanted.items():
        product = products.get(product_id)
        requests = [IssueRequest(str(reward.id), reward.amount, reward.currency) for reward in group]
        if product is None:
            results: dict[str, IssuedCode | SupplierError] = dict.fromkeys(
                (r.reference for r in requests), SupplierRejected("The product no longer exists in the catalogue.")
            )
        else:
            try:
                results = adapter_for(product.supplier).issue_many(product=product, requests=requests)
            except SupplierError as exc:  # the adapter failed as a whole (no credential, ...)
                results = dict.fromkeys((r.reference for r in requests), exc)
        for reference, result in results.items():
            if isinstance(result, IssuedCode):
                codes[reference] = result
            else:
                _issue_failed(reference, result)
    return codes


def _issue_failed(reward_id: str, error: SupplierError) -> None:
    if not error.retryable:
        reward_fail_locked(reward_id=reward_id, reason=str(error))
        return
    # One reward's trouble at its supplier: reward_fulfil retries it with backoff and, in the end, fails it.
    Reward.objects.filter(pk=reward_id, status=RewardStatus.PROCESSING).update(lease_expires_at=None)
    task_publish(FULFIL_TASK, args=[reward_id], event="reward.publish_failed", countdown=error.retry_after or 2.0)


# --- step 3: settle -------------------------------------------------------------------------------------


def _settle(reward_ids: list[Any], issued: dict[str, IssuedCode]) -> list[Reward]:
    """Store the codes and capture the holds of the rewards still `processing` (not canceled or failed meanwhile,
    and not given to a code-less path: every reward that needs a code has one here); returns them, locked
    no more."""
    with transaction.atomic():
        rewards = list(rewards_for_update().filter(pk__in=reward_ids, status=RewardStatus.PROCESSING).order_by("pk"))
        ready = [r for r in rewards if str(r.id) in issued or r.code_encrypted or _needs_no_code(r)]
        columns: dict[str, list[Any]] = {"ids": [], "codes": [], "pins": [], "last4s": [], "refs": []}
        for reward in ready:
            code = issued.get(str(reward.id))
            if code is None or reward.code_encrypted:
                continue  # the first code stored wins
            reward.code_encrypted = crypto.encrypt(code.code)
            reward.pin_encrypted = crypto.encrypt(code.pin) if code.pin else ""
            reward.code_last4 = code.code[-4:]
            reward.supplier_reference = code.reference
            columns["ids"].append(reward.id)
            columns["codes"].append(reward.code_encrypted)
            columns["pins"].append(reward.pin_encrypted)
            columns["last4s"].append(reward.code_last4)
            columns["refs"].append(reward.supplier_reference)
        if columns["ids"]:
            with connection.cursor() as cursor:
                cursor.execute(_CODES_SQL.format(reward=Reward._meta.db_table), columns)
        funds_hold_capture_many(hold_ids=[reward.hold_id for reward in ready if reward.hold_id is not None])
    return ready


def _needs_no_code(reward: Reward) -> bool:
    return reward.product_snapshot.get("type") in ("choice", "physical")


# --- step 4: deliver ------------------------------------------------------------------------------------


class _MailConnection:
    """One mail backend connection kept open for a drain's batches (opened on the first email, reopened after
    an error), instead of a connection per message."""

    def __init__(self) -> None:
        self.backend: Any = None

    def get(self) -> Any:
        if self.backend is None:
            self.backend = get_connection(fail_silently=False)
            self.backend.open()
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception:  # a broken connection: nothing left to close cleanly
                logger.debug("mail connection close failed", exc_info=True)
            self.backend = None


def _deliver(settled: list[Reward], mail: _MailConnection) -> None:
    """Send and record, in one transaction under the rewards' row locks (see the module docstring)."""
    failed: dict[Any, str] = {}
    retry: list[Any] = []
    with transaction.atomic():
        rewards = list(
            rewards_for_update()
            .select_related("order__program")
            .filter(pk__in=[r.id for r in settled], status=RewardStatus.PROCESSING)
            .order_by("pk")
        )
        emails = [r for r in rewards if r.delivery_method == DeliveryMethod.EMAIL]
        accepted = mail_accepted([f"reward.{r.id}" for r in emails])
        for reward in emails:
            message_id = f"reward.{reward.id}"
            if message_id in accepted:
                continue  # sent by a worker killed before it could record it: recorded now, not sent again
            if retry:
                retry.append(reward.id)
                continue
            try:
                message = reward_email_message(reward=reward, to=reward.recipient_email, message_id=message_id)
                mail_send(message, connection=mail.get())
            except DeliveryFailed as exc:
                failed[reward.id] = str(exc)
                continue
            except (OSError, DatabaseError):
                # The mail server went away: what is unsent waits for its lease to run out (then reward_fulfil).
                logger.warning("mail server unavailable; rewards left for retry", extra={"event": "reward.send_retry"})
                mail.close()
                retry.append(reward.id)
                continue
            except Exception as exc:  # the same every time (a broken template, a refused header): see reward_deliver
                logger.exception(
                    "reward could not be sent", extra={"event": "reward.send_error", "reward_id": str(reward.id)}
                )
                failed[reward.id] = f"the message could not be sent ({type(exc).__name__})"
                continue
            fault_point("deliver.sent")  # tests only: a crash after the send, before its note (sent again later)
            mail_accepted_note(message_id)
            fault_point("deliver.noted")  # tests only: a crash mid-batch (recorded later, not sent again)
        done = [r for r in rewards if r.id not in failed and r.id not in retry]
        _record_delivered(done)
        if retry:
            until = timezone.now() + timedelta(seconds=SEND_RETRY_SECONDS)
            Reward.objects.filter(pk__in=retry).update(lease_expires_at=until)
        _orders_refresh({r.order_id for r in done})
    for reward_id, reason in failed.items():
        reward_delivery_failed(reward_id, reason=reason)
    if done:
        logger.info("rewards delivered", extra={"event": "reward.delivered_batch", "count": len(done)})


def _record_delivered(rewards: list[Reward]) -> None:
    """The delivered rewards' rows, timeline and `reward.delivered` events, set-based (reward_transition's work)."""
    if not rewards:
        return
    now = timezone.now()
    discloses = [r.delivery_method == DeliveryMethod.EMAIL and message_carries_code(r) for r in rewards]
    with connection.cursor() as cursor:
        cursor.execute(
            _DELIVERED_SQL.format(reward=Reward._meta.db_table),
            {"ids": [r.id for r in rewards], "discloses": discloses, "now": now},
        )
    copy_insert(
        RewardEvent,
        ["reward_id", "from_status", "to_status", "note", "created_at"],
        ((r.id, RewardStatus.PROCESSING, RewardStatus.DELIVERED, _NOTES.get(r.delivery_method, "issued"), now)
         for r in rewards),
    )  # fmt: skip
    for reward in rewards:
        reward.status, reward.updated_at, reward.lease_expires_at = RewardStatus.DELIVERED, now, None
        reward.delivered_at = reward.delivered_at or now
    event_emit_many(type="reward.delivered", datas=[reward_render(reward) for reward in rewards])
