"""Reminders of unclaimed claim links, on the program's schedule (Program.reminders), by the channel the link
went out on (email or SMS), in the reward's language.

Schedule: `{"after_days": [3, 7], "before_expiry_days": [7]}` — three and seven days after the link was
delivered, and seven days before its claim-by date. The beat sweep (fulfillment.tasks.reminders_sweep) looks at
rewards whose link is still unclaimed (`delivered`, `opened`; not bounced, redeemed, expired or canceled: those
stop reminders) and sends the latest entry that is due.

Exactly once per entry: the RewardReminder row (unique per reward and entry) is inserted in the transaction that
sends the message, under the reward's row lock, like a delivery (fulfillment.services.reward_deliver): a failed
send rolls the row back and the next sweep tries again. When several entries are due at once (the sweep was
down, or the schedule changed), one message goes out and the earlier entries are recorded as superseded, so a
recipient never gets two reminders in one go. Each reminder writes a line in the reward's timeline.

The sweep visits only the schemas with a reminder due (tenants.due, kind `reminders`): a link delivered or opened,
or a program changed, notes its schema, and after each visit `rewards_next_reminder` says when the schema's next
unsent entry falls due (one that is already due but was not sent — a failed send, a reward locked at the time —
makes it due at once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from orders.models import DeliveryMethod, Order, Reward, RewardEvent, RewardStatus
from programs.models import Program

from .models import RewardReminder

logger = logging.getLogger(__name__)

# A link the recipient still holds unclaimed; a bounced one (delivery_failed) is for the sender to fix first.
REMINDABLE = (RewardStatus.DELIVERED, RewardStatus.OPENED)
REMINDER_METHODS = (DeliveryMethod.EMAIL, DeliveryMethod.SMS)
SWEEP_BATCH = 500  # rewards read per query; each reminder is then sent in its own transaction


@dataclass(frozen=True)
class DueReminder:
    key: str  # "after:3" / "before:7"
    due_at: datetime
    label: str  # for the timeline


def reminders_schedule(reward: Reward) -> list[DueReminder]:
    """Every entry of the program's schedule for this reward, oldest first (due or not)."""
    program = reward.order.program
    schedule: dict[str, Any] = dict(program.reminders or {}) if program is not None else {}
    entries: list[DueReminder] = []
    if reward.delivered_at is not None:
        for days in schedule.get("after_days") or []:
            entries.append(
                DueReminder(f"after:{days}", reward.delivered_at + timedelta(days=days), f"{days} days after sending")
            )
    if reward.claim_expires_at is not None:
        for days in schedule.get("before_expiry_days") or []:
            due = reward.claim_expires_at - timedelta(days=days)
            if reward.delivered_at is None or due > reward.delivered_at:  # not before the link itself went out
                entries.append(DueReminder(f"before:{days}", due, f"{days} days before the link expires"))
    return sorted(entries, key=lambda entry: entry.due_at)


def rewards_to_remind(*, now: datetime, after: Any = None, limit: int = SWEEP_BATCH) -> list[Any]:
    """Ids of unclaimed email/SMS links under a program with reminders, in pk order from `after` (one query)."""
    rewards = (
        Reward.objects.filter(
            status__in=REMINDABLE,
            delivery_method__in=REMINDER_METHODS,
            claim_expires_at__gt=now,
            order__program__isnull=False,
        )
        .exclude(claim_token_hash="")
        .exclude(order__program__reminders={})
        .order_by("pk")
    )
    if after is not None:
        rewards = rewards.filter(pk__gt=after)
    return list(rewards.values_list("pk", flat=True)[:limit])


def reward_remind(*, reward_id: Any, now: datetime | None = None) -> RewardReminder | None:
    """Send the latest due, unsent reminder of this reward's link, once; None if none is due."""
    from .delivery import mail_send, reward_email_message, reward_sms_text
    from .sms import get_sms_backend

    now = now or timezone.now()
    with transaction.atomic():
        # SKIP LOCKED: a reward being delivered, claimed or canceled right now is reminded at the next sweep.
        reward = (
            Reward.objects.select_for_update(of=("self",), no_key=True, skip_locked=True)
            .select_related("order__program")
            .filter(pk=reward_id)
            .order_by()
            .first()
        )
        if reward is None or reward.status not in REMINDABLE or not reward.claim_token_hash:
            return None
        if reward.claim_expires_at is None or reward.claim_expires_at <= now:
            return None
        sent = set(RewardReminder.objects.filter(reward=reward).values_list("key", flat=True))
        due = [entry for entry in reminders_schedule(reward) if entry.due_at <= now and entry.key not in sent]
        if not due:
            return None
        *superseded, latest = due
        RewardReminder.objects.bulk_create([RewardReminder(reward=reward, key=entry.key) for entry in superseded])
        channel = "sms" if reward.delivery_method == DeliveryMethod.SMS else "email"
        reminder = RewardReminder.objects.create(reward=reward, key=latest.key, channel=channel)
        RewardEvent.objects.create(
            reward=reward,
            from_status=reward.status,
            to_status=reward.status,
            note=f"reminder sent by {'SMS' if channel == 'sms' else 'email'} ({latest.label})",
        )
        if channel == "sms":
            get_sms_backend().send(to=reward.recipient_phone, body=reward_sms_text(reward, reminder=True))
        else:
            message_id = f"reward.{reward.id}.reminder.{latest.key.replace(':', '-')}"
            mail_send(
                reward_email_message(reward=reward, to=reward.recipient_email, message_id=message_id, reminder=True)
            )
    logger.info(
        "claim link reminder sent",
        extra={"event": "reward.reminded", "reward_id": str(reward_id), "reminder": latest.key, "channel": channel},
    )
    return reminder


def rewards_remind(*, now: datetime | None = None) -> int:
    """Send every due reminder in the current schema; returns how many messages went out.

    A reward whose message fails (the mail server or SMS provider away, a refused address) is logged and left
    for the next sweep; the others still go out."""
    now = now or timezone.now()
    sent = 0
    after = None
    while batch := rewards_to_remind(now=now, after=after):
        after = batch[-1]
        for reward_id in batch:
            try:
                sent += reward_remind(reward_id=reward_id, now=now) is not None
            except Exception as exc:  # one bad address or an outage must not stop the sweep
                logger.warning(
                    "claim link reminder not sent; retried next sweep",
                    extra={"event": "reward.remind_failed", "reward_id": str(reward_id), "error": type(exc).__name__},
                )
    return sent


def _days(column: str) -> str:
    """SQL for the schedule's days under `column` of the program's reminders, one text row each (none unless it is
    a list, as `schedule.get(column) or []` reads it)."""
    path = f"p.reminders -> '{column}'"
    return f"jsonb_array_elements_text(CASE WHEN jsonb_typeof({path}) = 'array' THEN {path} ELSE '[]' END) AS d(days)"


def rewards_next_reminder(*, now: datetime | None = None) -> datetime | None:
    """When the earliest unsent entry of any remindable link's schedule in the current schema falls due (in the
    past for one already due), or None: `reminders_schedule` and `rewards_to_remind` in one query."""
    now = now or timezone.now()
    rewards, orders = Reward._meta.db_table, Order._meta.db_table
    programs, sent = Program._meta.db_table, RewardReminder._meta.db_table
    # Whole days of 24 hours, as timedelta(days=…) adds them (an interval of days would follow the session's zone).
    interval = "make_interval(hours => 24 * d.days::int)"
    candidates = (
        f"FROM {rewards} r JOIN {orders} o ON o.id = r.order_id JOIN {programs} p ON p.id = o.program_id "
        "CROSS JOIN LATERAL {days} WHERE r.status IN (%s, %s) AND r.delivery_method IN (%s, %s) "
        "AND r.claim_expires_at > %s AND r.claim_token_hash <> ''"
    )
    params: list[str | datetime] = [*REMINDABLE, *REMINDER_METHODS, now]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(entry.due_at) FROM ("
            f"SELECT r.id, 'after:' || d.days AS key, r.delivered_at + {interval} AS due_at "
            + candidates.format(days=_days("after_days"))
            + " AND r.delivered_at IS NOT NULL UNION ALL "
            f"SELECT r.id, 'before:' || d.days, r.claim_expires_at - {interval} "
            + candidates.format(days=_days("before_expiry_days"))
            + f" AND (r.delivered_at IS NULL OR r.claim_expires_at - {interval} > r.delivered_at)"
            f") entry WHERE NOT EXISTS (SELECT 1 FROM {sent} s WHERE s.reward_id = entry.id AND s.key = entry.key)",
            params + params,
        )
        row = cursor.fetchone()
    return row[0] if row else None
