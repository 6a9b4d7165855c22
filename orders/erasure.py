"""A person's rewards for their data export, and anonymising rewards' recipients — for a person's erasure and
for the tenant's retention period alike (one code path): the recipient fields the rewards copied (name, email,
phone, message), the timeline notes, the stored webhook events about the rewards (and their orders and
shipments) with their deliveries' attempts, and what later stages hold per reward (fulfilment registers the
shipping address here). Amounts, products, holds and the ledger stay as they were."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Min, Q, QuerySet
from django.utils import timezone

from core.db import custom_plans
from people.erasure import ERASED, Erasure, Scrub, rows_scrub_each
from people.models import Person

from .models import Reward, RewardEvent
from .selectors import reward_render


def person_rewards(erasure: Erasure) -> QuerySet[Reward]:
    """The person's rewards: those that named them, and those sent inline to their email address."""
    match = Q(person_id=erasure.person.pk)
    if erasure.person.email:
        match |= Q(recipient_email=erasure.person.email)
    return Reward.objects.filter(match)


def rewards_export(person: Person) -> list[dict[str, Any]]:
    """The person's rewards as the API shows them (codes masked, no claim link) with their timelines: when each
    was sent, delivered, opened on the claim page, redeemed."""
    rewards = Reward.objects.filter(person=person).select_related("order", "shipment").prefetch_related("events")
    return [
        {**reward_render(reward, bearer=False), "timeline": [
            {"status": event.to_status, "at": event.created_at.isoformat().replace("+00:00", "Z")}
            for event in reward.events.all()
        ]}
        for reward in rewards.order_by("created_at")
    ]  # fmt: skip


# Later stages' data kept per reward (fulfilment: the shipping address), registered in their AppConfig.ready():
# each takes reward ids and returns {subject id (e.g. the shipment's): the personal strings it held}, so stored
# events about that subject are scrubbed of them too.
RewardScrubber = Callable[[list[UUID]], dict[str, tuple[str, ...]]]
_reward_scrubbers: dict[str, RewardScrubber] = {}


def reward_scrubber_register(name: str, scrubber: RewardScrubber) -> None:
    _reward_scrubbers[name] = scrubber


NOTHING = Scrub(needles=())  # an event about none of the subjects: left as it is


def _needles(*values: str) -> tuple[str, ...]:
    """Strings worth searching for (as people.erasure.person_needles: shorter names match unrelated text)."""
    return tuple(dict.fromkeys(value for value in values if value and len(value) >= 4))


def rewards_anonymise(reward_ids: list[UUID], *, extra: tuple[str, ...] = ()) -> int:
    """Anonymise these rewards' recipients everywhere the platform stored them; how many rewards changed.
    `extra`: more strings to scrub from their events (an erased person's own).

    In about ten statements however many rewards, events, deliveries and attempts (each table read once and its
    changed rows written back once, people.erasure.rows_scrub_each): a retention round of 1,000 rewards took
    6,566 statements and ~6 s before (21,507 and ~18 s for physical rewards), now 10-12 and ~0.6 s
    (bench/retention.py, docs/scaling.md).

    One transaction: a crash or a lost connection part-way undoes all of it. (Without it, a shipment's address
    blanked before its events were scrubbed would have left them unscrubbed for good: the next run finds nothing
    left to search them for.) And the reward rows are blanked last, so whatever happens a reward whose recipient
    is still there is found again by the next run (rewards_anonymise_delivered), which does it all again."""
    from webhooks.models import Event, WebhookAttempt, WebhookDelivery

    if not reward_ids:
        return 0
    with transaction.atomic():
        subjects: dict[str, tuple[str, ...]] = {}
        # Locked for the round (in id order): a reward changing state meanwhile (redeemed, expired) writes an event
        # rendered with its recipient. Without the lock the round could read the events before that one committed
        # and blank the row after: the new event kept the name and email for good. Now such a change either
        # commits first (the round waits for it, then reads its event) or waits for the round and renders the
        # blanked row. A round holds the locks ~0.6-1.3 s (bench/retention.py); its rewards were delivered at least
        # a retention period ago, so little else is waiting on them.
        rows = (
            Reward.objects.select_for_update()
            .filter(pk__in=reward_ids)
            .order_by("pk")
            .values_list("pk", "order_id", "recipient_name", "recipient_email", "recipient_phone")
        )
        for pk, order_id, *recipient in rows:
            needles = (*_needles(*recipient), *extra)
            subjects[str(pk)] = needles
            subjects[str(order_id)] = (*subjects.get(str(order_id), ()), *needles)
        for scrubber in _reward_scrubbers.values():
            for subject, held in scrubber(reward_ids).items():
                subjects[subject] = (*subjects.get(subject, ()), *_needles(*held), *extra)
        scrubs = {subject: Scrub(needles=tuple(dict.fromkeys(needles))) for subject, needles in subjects.items()}
        # Stored events about each subject (data->'id' is indexed for the portal's timelines), scrubbed of that
        # subject's strings; then what the deliveries of the events that changed recorded, and their attempts.
        events = Event.objects.filter(data__id__in=list(scrubs))
        changed = rows_scrub_each(
            rows=events, fields=("data",), key="data__id", scrub_for=lambda subject: scrubs.get(str(subject), NOTHING)
        )
        by_event = {event_id: scrubs[str(subject)] for event_id, subject in changed.items()}
        deliveries = WebhookDelivery.objects.filter(event_id__in=list(by_event))
        rows_scrub_each(rows=deliveries, fields=("last_error",), key="event_id", scrub_for=by_event.__getitem__)
        attempts = WebhookAttempt.objects.filter(delivery__event_id__in=list(by_event))
        attempt_fields = ("request_headers", "response_excerpt", "error")
        rows_scrub_each(rows=attempts, fields=attempt_fields, key="delivery__event_id", scrub_for=by_event.__getitem__)
        RewardEvent.objects.filter(reward_id__in=reward_ids).exclude(note="").update(note="")
        return Reward.objects.filter(pk__in=reward_ids).update(
            recipient_name=ERASED, recipient_email="", recipient_phone="", message=""
        )


def rewards_scrub(erasure: Erasure) -> None:
    """people.erasure: the person's rewards, anonymised as retention does (and their own strings searched for)."""
    rewards_anonymise(list(person_rewards(erasure).values_list("id", flat=True)), extra=erasure.needles)


RETENTION_BATCH = 1000  # rewards anonymised per round: one transaction of about ten statements (rewards_anonymise)


def rewards_next_anonymisation() -> datetime | None:
    """When rewards_anonymise_delivered next finds a reward in this schema: the earliest delivery not anonymised
    yet, plus the retention period. None without a retention period or such a reward: a delivery, or a change to
    the privacy settings, notes the schema again (tenants.due, kind `retention`)."""
    from people.selectors import privacy_settings_get

    days = privacy_settings_get().recipient_retention_days
    if not days:
        return None
    # The first entry of reward_delivered_kept (orders 0027), whose predicate is this filter's (214 ms → 0.01 ms at
    # 1,000,000 rewards). Unprepared (core.db.custom_plans): a generic plan, ERASED a parameter, cannot use the
    # partial index; PostgreSQL was seen keeping the custom plan anyway, but that is its cost model's choice.
    kept = Reward.objects.filter(delivered_at__isnull=False).exclude(recipient_name=ERASED)
    with custom_plans():
        first: datetime | None = kept.aggregate(first=Min("delivered_at"))["first"]
    return None if first is None else first + timedelta(days=days)


def rewards_anonymise_delivered(*, now: datetime | None = None) -> int:
    """Anonymise the recipient of every reward delivered more than the tenant's retention period ago (name,
    email, phone, message, shipping address but its country, and the stored webhook events about them);
    amounts, products and states stay. Returns how many were changed."""
    from people.selectors import privacy_settings_get

    days = privacy_settings_get().recipient_retention_days
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    changed = 0
    while True:
        # Oldest delivery first, straight off reward_delivered_kept (orders 0027). In the model's ordering (newest
        # created first) the planner walked the created_at index past every reward, index or not: at 1,000,000
        # rewards 382 ms with nothing due, 75 ms for 1,000 due (0.01 and 0.3 ms now).
        with custom_plans():  # as above: the partial index needs ERASED planned as a value
            batch = list(
                Reward.objects.filter(delivered_at__lt=cutoff)
                .exclude(recipient_name=ERASED)
                .order_by("delivered_at")
                .values_list("pk", flat=True)[:RETENTION_BATCH]
            )
        if not batch:
            return changed
        changed += rewards_anonymise(batch)
