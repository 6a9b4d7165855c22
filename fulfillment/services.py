"""Fulfilment: turn an accepted reward into a code in the recipient's hands, exactly once.

reward_fulfil runs in three steps so no lock is held during the supplier call:
  1. claim   — lock the reward, pending → processing, take a lease (a stale lease can be re-claimed);
  2. issue   — ask the supplier, idempotent per reward id (a retry gets the same code, never a second);
  3. settle  — lock again, store the code encrypted, capture the hold (guarded: never twice), deliver.
A crash between any two steps is repaired by running reward_fulfil again (task redelivery or the
sweeper); every step checks state first, so running it twice is harmless. Delivery (reward_deliver) sends
inside the transaction that marks the reward delivered: at-least-once, doubled only by a crash in the one
round trip between the mail server's acceptance and COMMIT, and then under the same Message-ID.
resilience/test_worker_kills.py kills workers between these steps (core/faults.py) and at random.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from core import crypto
from core.db import connection
from core.errors import ApplicationError, NotFoundError
from core.faults import fault_point
from core.publish import task_publish
from orders.lifecycle import order_refresh_status, reward_capture, reward_fail, reward_transition
from orders.models import DeliveryMethod, OrderType, Reward, RewardStatus
from orders.selectors import reward_lock

from .suppliers import IssuedCode, SupplierError, SupplierRejected, adapter_for

logger = logging.getLogger(__name__)

DELIVER_TASK = "fulfillment.tasks.reward_deliver_task"


def _claim(reward_id: Any) -> Reward | None:
    """Step 1. Returns the reward if this worker now owns it, else None (nothing to do or someone else has it)."""
    now = timezone.now()
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None:
            return None
        if reward.status == RewardStatus.SCHEDULED:
            if reward.deliver_at and reward.deliver_at > now:
                return None
            reward_transition(reward=reward, to=RewardStatus.PENDING, note="scheduled time reached")
        if reward.status == RewardStatus.PROCESSING and reward.lease_expires_at and reward.lease_expires_at > now:
            return None  # another worker holds it
        if reward.status not in (RewardStatus.PENDING, RewardStatus.PROCESSING):
            return None
        if reward.attempts >= settings.FULFILMENT_MAX_ATTEMPTS:
            _give_up(reward)
            return None
        reward.attempts += 1
        reward.lease_expires_at = now + timedelta(seconds=settings.FULFILMENT_LEASE_SECONDS)
        reward.save(update_fields=["attempts", "lease_expires_at"])
        reward_transition(reward=reward, to=RewardStatus.PROCESSING, note=f"attempt {reward.attempts}")
        order_refresh_status(order=reward.order)
    return reward


def _give_up(reward: Reward) -> None:
    """The sweeper's last word on a reward that kept failing (locked, in `processing` or `pending`).

    Paid for (the hold captured, the code stored): delivery_failed, so an admin can resend or cancel it. Never
    issued: failed, and its hold released.
    """
    from funds.models import HoldStatus

    reason = f"gave up after {reward.attempts} attempts; see the worker log for each error"
    reward.lease_expires_at = None
    reward.save(update_fields=["lease_expires_at"])
    # Settled: its hold captured, or (a zero-cost reward, which holds nothing) its code stored.
    paid = reward.hold.status == HoldStatus.CAPTURED if reward.hold is not None else bool(reward.code_encrypted)
    if paid and reward.status == RewardStatus.PROCESSING:
        reward.failure_reason = reason
        reward.save(update_fields=["failure_reason"])
        reward_transition(reward=reward, to=RewardStatus.DELIVERY_FAILED, note=reason)
        order_refresh_status(order=reward.order)
    else:
        reward_fail(reward=reward, reason=reason)
    logger.error("reward given up", extra={"event": "reward.given_up", "reward_id": str(reward.id), "reason": reason})


def _supplier_for(reward: Reward) -> Any:
    from catalog.models import Product

    product = next(iter(Product.objects.select_related("supplier").filter(pk=reward.product_id).order_by()), None)
    if product is None:
        raise SupplierRejected("The product no longer exists in the catalogue.")
    return product, product.supplier


def _needs_code(reward: Reward) -> bool:
    product_type = reward.product_snapshot.get("type")
    return product_type not in ("choice", "physical") and not reward.code_encrypted


def reward_issue_code(*, reward: Reward) -> IssuedCode:
    """Step 2 (no locks held). Idempotent per reward id at the supplier."""
    product, supplier = _supplier_for(reward)
    return adapter_for(supplier).issue(
        product=product, amount=reward.amount, currency=reward.currency, reference=str(reward.id)
    )


def reward_code_store(reward: Reward, issued: IssuedCode) -> None:
    """Keep the supplier's code on the (locked) reward, encrypted. The first code stored wins: a repeat is a no-op."""
    if reward.code_encrypted:
        return
    reward.code_encrypted = crypto.encrypt(issued.code)
    reward.pin_encrypted = crypto.encrypt(issued.pin) if issued.pin else ""
    reward.code_last4 = issued.code[-4:]
    reward.supplier_reference = issued.reference
    reward.save(update_fields=["code_encrypted", "pin_encrypted", "code_last4", "supplier_reference"])


def _settle(reward_id: Any, issued: IssuedCode | None) -> Reward | None:
    """Step 3: store the code, capture the hold, hand over to delivery."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None or reward.status != RewardStatus.PROCESSING:
            return None  # canceled meanwhile, or another worker finished it
        if issued is not None:
            reward_code_store(reward, issued)
        if reward.delivery_method == DeliveryMethod.SHIPMENT:
            from .shipments import shipment_submit

            reward_capture(reward=reward)  # the gift is bought when it goes to the fulfilment partner
            shipment_submit(reward=reward)
            reward.lease_expires_at = None
            reward.save(update_fields=["lease_expires_at"])
            order_refresh_status(order=reward.order)
            return reward
        reward_capture(reward=reward)
    return reward


def reward_fulfil(*, reward_id: Any) -> Reward | None:
    """Run all three steps. Raises SupplierError if the supplier failed retryably (the task retries)."""
    reward = _claim(reward_id)
    if reward is None:
        return None
    issued = None
    if _needs_code(reward):
        try:
            issued = reward_issue_code(reward=reward)
        except SupplierRejected as exc:
            reward_fail_locked(reward_id=reward.id, reason=str(exc))
            return None
        except SupplierError:
            _release_lease(reward.id)
            raise
    fault_point("fulfil.issued")  # tests only (core/faults.py): a crash before the code is recorded
    settled = _settle(reward.id, issued)
    if settled is None or settled.delivery_method == DeliveryMethod.SHIPMENT:
        return settled
    fault_point("fulfil.settled")  # tests only: a crash after the capture, before the email/SMS goes out
    reward_deliver(reward_id=settled.id, first_delivery=True)
    return settled


def _release_lease(reward_id: Any) -> None:
    Reward.objects.filter(pk=reward_id, status=RewardStatus.PROCESSING).update(lease_expires_at=None)


def reward_fail_locked(*, reward_id: Any, reason: str) -> Reward | None:
    """Non-retryable failure (or retries exhausted): fail the reward and release exactly its hold."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None or reward.status != RewardStatus.PROCESSING:
            return reward
        reward.lease_expires_at = None
        reward.save(update_fields=["lease_expires_at"])
        reward_fail(reward=reward, reason=reason)
    logger.warning("reward failed", extra={"event": "reward.failed", "reward_id": str(reward_id), "reason": reason})
    return reward


def reward_deliver(
    *,
    reward_id: Any,
    to_email: str | None = None,
    to_phone: str | None = None,
    send_id: str = "",
    first_delivery: bool = False,
) -> Reward | None:
    """Send the reward by its delivery method (email / SMS / nothing for api and link) and mark it delivered.

    The send happens inside the transaction that records it: under the reward's row lock the reward is
    marked delivered (with its timeline entry and `reward.delivered` event), the message goes out, the
    order's status is refreshed, COMMIT. A worker that dies before the mail server or SMS provider has
    accepted the message leaves nothing recorded, and the sweeper sends it again; an accepted email is noted
    in Redis at once (fulfillment.delivery.mail_accepted_note), so a death after the note records the delivery
    later without sending again, and only a death between the acceptance and the note sends it twice. So
    delivery is at-least-once with a window of one Redis round trip, and every copy of an email carries the
    same Message-ID (`send_id` tells a requested resend apart), by which mailboxes show one message. Measured
    by resilience/test_worker_kills.py. Most email rewards come here only on a retry: the fulfilment drain
    (fulfillment.drain) delivers them in batches under the same rules.

    `first_delivery` (fulfilment) sends only a reward still `processing`: a worker that lost its lease and
    finds the reward delivered by the one that took over must not send it again (only a resend does that).
    """
    from .delivery import (
        DeliveryFailed,
        mail_accepted,
        mail_accepted_note,
        message_carries_code,
        send_reward_email,
        send_reward_sms,
    )

    try:
        with transaction.atomic():
            reward = reward_lock(reward_id)
            sendable = (
                (RewardStatus.PROCESSING,)
                if first_delivery
                else (RewardStatus.PROCESSING, RewardStatus.DELIVERED, RewardStatus.DELIVERY_FAILED)
            )
            if reward is None or reward.status not in sendable:
                return None
            notes: dict[str, str] = {DeliveryMethod.EMAIL: "emailed", DeliveryMethod.SMS: "sent by SMS"}
            note = notes.get(reward.delivery_method, "issued")
            if reward.status in (RewardStatus.PROCESSING, RewardStatus.DELIVERY_FAILED):
                reward_transition(reward=reward, to=RewardStatus.DELIVERED, note=note)
            reward.lease_expires_at = None
            fields = ["lease_expires_at"]
            sends = reward.delivery_method in (DeliveryMethod.EMAIL, DeliveryMethod.SMS)
            if sends and reward.code_disclosed_at is None and message_carries_code(reward):
                # Recorded in the transaction that sends: if the send fails, this rolls back with it.
                reward.code_disclosed_at = timezone.now()
                fields.append("code_disclosed_at")
            reward.save(update_fields=fields)
            message_id = f"reward.{reward.id}" + (f".{send_id}" if send_id else "")
            # Fulfilment's first send is skipped if a killed worker's send of it was accepted (see the note below);
            # a resend is asked for, and goes out.
            noted = first_delivery and reward.delivery_method == DeliveryMethod.EMAIL
            emailed = reward.delivery_method == DeliveryMethod.EMAIL and not (noted and mail_accepted([message_id]))
            try:
                if emailed:
                    send_reward_email(reward=reward, to=to_email or reward.recipient_email, message_id=message_id)
                elif reward.delivery_method == DeliveryMethod.SMS:
                    send_reward_sms(reward=reward, to=to_phone or reward.recipient_phone)
            except (DeliveryFailed, OSError, DatabaseError):
                raise  # refused address: below; server/provider/database away: the task or the sweeper retries
            except Exception as exc:
                # Anything else fails the same way on every retry (a header the mail library refuses, a broken
                # template): the reward is paid for and must not sit in `processing` for ever. An admin can
                # correct and resend it, or cancel it (the code never went out, so the supplier can void it).
                logger.exception(
                    "reward could not be sent", extra={"event": "reward.send_error", "reward_id": str(reward_id)}
                )
                raise DeliveryFailed(f"the message could not be sent ({type(exc).__name__})") from exc
            fault_point("deliver.sent")  # tests only: a crash after the send, before its note (sent again later)
            if emailed and noted:
                mail_accepted_note(message_id)  # a crash from here to COMMIT records it later, without a resend
            # After the send: the order row stays locked for this last statement only, not while sending
            # (siblings of a large order deliver in parallel).
            order_refresh_status(order=reward.order)
    except DeliveryFailed as exc:
        return reward_delivery_failed(reward_id, reason=str(exc))
    logger.info(
        "reward delivered",
        extra={"event": "reward.delivered", "reward_id": str(reward_id), "method": reward.delivery_method},
    )
    return reward


def reward_delivery_failed(reward_id: Any, *, reason: str) -> Reward | None:
    with transaction.atomic():
        locked = reward_lock(reward_id)
        if locked is None or locked.status not in (RewardStatus.PROCESSING, RewardStatus.DELIVERED):
            return locked
        locked.failure_reason = reason[:300]
        locked.lease_expires_at = None
        locked.save(update_fields=["failure_reason", "lease_expires_at"])
        reward_transition(reward=locked, to=RewardStatus.DELIVERY_FAILED, note=reason)
        order_refresh_status(order=locked.order)
    logger.warning(
        "reward delivery failed",
        extra={"event": "reward.delivery_failed", "reward_id": str(reward_id), "reason": reason},
    )
    return locked


RESENDABLE_METHODS = (DeliveryMethod.EMAIL, DeliveryMethod.SMS)
RESENDABLE_STATES = (RewardStatus.DELIVERED, RewardStatus.DELIVERY_FAILED, RewardStatus.OPENED)


def reward_can_resend(reward: Reward) -> bool:
    return reward.delivery_method in RESENDABLE_METHODS and reward.status in RESENDABLE_STATES


def reward_can_reveal(reward: Reward) -> bool:
    return bool(reward.code_encrypted) and reward.code_voided_at is None and reward.status != RewardStatus.CANCELED


def reward_resend(*, reward_id: Any, email: str | None = None, phone: str | None = None) -> Reward:
    """Send a delivered reward again, optionally to a corrected address (which then replaces the old one)."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from core.phone import E164_RE

    reward = Reward.objects.filter(pk=reward_id).first()
    if reward is None:
        raise NotFoundError("No such reward.")
    if reward.delivery_method not in RESENDABLE_METHODS:
        raise ApplicationError(
            f"Only email and SMS rewards can be resent; this one is delivered by {reward.delivery_method}.",
            code="not_resendable",
            status=409,
        )
    if reward.status not in RESENDABLE_STATES:
        raise ApplicationError(
            f"A {reward.status} reward cannot be resent (only delivered ones).", code="not_resendable", status=409
        )
    updates = []
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ApplicationError(
                "Not a valid email address.", code="validation_error", errors={"email": ["Invalid email."]}
            ) from None
        reward.recipient_email = email.strip().lower()
        updates.append("recipient_email")
    if phone:
        if not E164_RE.match(phone):
            raise ApplicationError(
                "Use E.164 format.", code="validation_error", errors={"phone": ["Use E.164, e.g. +14155550123."]}
            )
        reward.recipient_phone = phone
        updates.append("recipient_phone")
    if updates:
        reward.save(update_fields=updates)
    reward_id = str(reward.id)

    def publish() -> bool:
        return task_publish(
            DELIVER_TASK, args=[reward_id], event="reward.resend_publish_failed", log_extra={"reward_id": reward_id}
        )

    if transaction.get_connection().in_atomic_block:
        # Inside a caller's transaction: published after its commit, a broker outage then only logged (nothing
        # re-sends a resend later: the reward stays delivered and leaves no state for a sweeper to find).
        transaction.on_commit(publish)
    elif not publish():
        # The usual case (API, portal): the corrected address is saved; say plainly that nothing went out.
        raise ApplicationError(
            "The resend could not be queued (the task broker is unavailable): nothing was sent. Try again in a "
            "minute; the corrected address is kept.",
            code="service_unavailable",
            status=503,
            retryable=True,
        )
    return reward


def reward_reveal(*, reward_id: Any, actor: str) -> dict[str, str | None]:
    """The one place a code is shown (API delivery, an admin, the claim page): audited, never logged, and the
    code counts as disclosed from then on."""
    from .models import CodeReveal

    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None:
            raise NotFoundError("No such reward.")
        if reward.code_voided_at is not None or reward.status == RewardStatus.CANCELED:
            raise ApplicationError(
                "This reward was canceled: its code was voided and can no longer be shown.",
                code="reward_canceled",
                status=409,
            )
        if not reward.code_encrypted:
            raise ApplicationError(
                "This reward has no code yet: it is still being fulfilled, or it is physical, "
                "or a choice not yet made.",
                code="code_not_available",
                status=409,
                retryable=reward.status in (RewardStatus.PENDING, RewardStatus.PROCESSING, RewardStatus.SCHEDULED),
            )
        CodeReveal.objects.create(reward=reward, actor=actor[:200])
        if reward.code_disclosed_at is None:  # from now on the code is spent (orders.policy)
            reward.code_disclosed_at = timezone.now()
            reward.save(update_fields=["code_disclosed_at"])
    return {
        "code": crypto.decrypt(reward.code_encrypted),
        "pin": crypto.decrypt(reward.pin_encrypted) if reward.pin_encrypted else None,
    }


def reward_code_void(reward: Reward) -> None:
    """Ask the reward's supplier to void its code (registered with orders as its code voider).

    Runs under the reward's row lock, taken by reward_cancel: a vendor call under a lock is what the issue step
    avoids, but a cancel is rare and one row waits at most the vendor's timeout, while a reveal or claim racing
    the void would hand out a code we are about to refund.
    """
    from orders.handoff import VoidRefused, VoidUnavailable

    _product, supplier = _supplier_for(reward)
    try:
        adapter_for(supplier).void(reference=str(reward.id), disclosed=reward.code_disclosed_at is not None)
    except SupplierRejected as exc:
        raise VoidRefused(str(exc)) from None
    except SupplierError as exc:
        raise VoidUnavailable(str(exc)) from None


def rewards_due() -> list[str]:
    """Scheduled rewards whose time has come, and processing rewards whose worker lease expired."""
    now = timezone.now()
    scheduled = Reward.objects.filter(status=RewardStatus.SCHEDULED, deliver_at__lte=now).values_list("id", flat=True)
    stale = Reward.objects.filter(status=RewardStatus.PROCESSING, lease_expires_at__lt=now).values_list("id", flat=True)
    orphaned = Reward.objects.filter(
        status=RewardStatus.PENDING, created_at__lt=now - timedelta(seconds=settings.FULFILMENT_LEASE_SECONDS)
    ).values_list("id", flat=True)
    return [str(pk) for pk in [*scheduled[:1000], *stale[:1000], *orphaned[:1000]]]


def rewards_next_due() -> datetime | None:
    """When rewards_due() next finds something in this schema: the earliest scheduled delivery, processing lease
    end, or pending reward's orphan time (None: no open reward). tenants.due records it after a sweep's visit.

    Three minimums, each read from an index (reward_status_deliver_at, whose status prefix also finds the few
    rewards in processing, and the partial reward_pending_created): one aggregate over every open reward read them
    all, 461 ms in a schema with 1M rewards, 200,000 of them pending (measured with bench/search.py's data)."""
    with connection.cursor() as cursor:
        cursor.execute(REWARDS_NEXT_DUE_SQL, [settings.FULFILMENT_LEASE_SECONDS])
        row = cursor.fetchone()
    return row[0] if row else None


# The statuses are written into the text, not passed as parameters: a partial index's predicate (status =
# 'pending') can only be proven from a constant, which a prepared statement's generic plan does not have. The
# earliest scheduled delivery and the oldest pending reward are asked for as the first entry in index order
# (ORDER BY … LIMIT 1) rather than as min(): PostgreSQL rewrites min() that way only when its statistics make it
# look cheaper, and with the statistics of a nearly empty table it chose an aggregate over every matching row
# instead (seen in the test suite; at 200,000 pending rewards the aggregate took 461 ms). NULLs sort last, so the
# first entry is the minimum, or NULL when there is none, as min() answers.
REWARDS_NEXT_DUE_SQL = (
    f"SELECT LEAST((SELECT deliver_at FROM {Reward._meta.db_table} WHERE status = '{RewardStatus.SCHEDULED}' "
    "AND deliver_at IS NOT NULL ORDER BY deliver_at LIMIT 1), "
    f"(SELECT min(lease_expires_at) FROM {Reward._meta.db_table} WHERE status = '{RewardStatus.PROCESSING}'), "
    f"(SELECT created_at FROM {Reward._meta.db_table} WHERE status = '{RewardStatus.PENDING}' "
    "ORDER BY created_at LIMIT 1) + make_interval(secs => %s))"
)


__all__ = [
    "OrderType",
    "reward_deliver",
    "reward_fulfil",
    "reward_resend",
    "reward_reveal",
    "rewards_due",
    "rewards_next_due",
]
