"""Sending what automations owe: the scheduler's tick, the same-day retries and the activity reaction.

Each person's reward is one transaction: claim the run row (INSERT … ON CONFLICT DO NOTHING on
(automation, person, occurrence)), then create the order through the ordinary order path (funds held, program
budget checked) and mark the run sent. A second scheduler blocks on the first one's uncommitted claim and then
finds it taken; a worker killed before commit leaves neither the run nor the order, so the next tick sends it.
A refused order (insufficient funds, budget, a product withdrawn) leaves the run `failed` with the reason; the
tenant is alerted once a day per automation, and runs refused for money are retried on later ticks of the same
local day, when the funds may have arrived.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from core.errors import ApplicationError
from core.money import format_amount
from core.versions import version_bump

from .handoff import points_awarder
from .models import Automation, AutomationRun, RunStatus, TriggerType
from .schedule import audience_matches, due_now, send_window, tenant_timezone, years_since, zone

if TYPE_CHECKING:
    from people.models import Activity, Person

logger = logging.getLogger(__name__)

# Refusals that money arriving later the same day can cure; anything else stays failed (the reason says why).
RETRYABLE = ("insufficient_funds", "budget_exceeded")
# The core.versions counter bumped by every claimed run: the Automations list's cached summaries carry it.
RUNS_VERSION = "automation-runs"
TOKEN = re.compile(r"\{(\w+)\}")
# What _place writes on a run.
OUTCOME_FIELDS = ["status", "order", "points_award_id", "failure_code", "failure_reason", "updated_at"]


def message_render(template: str, *, person: Person, years: int | None) -> str:
    """The automation's message with `{name}`, `{first_name}`, `{department}`, `{years}`, `{external_id}`
    filled in; other braces are left as written (no attribute access: this is not str.format)."""
    values = {
        "name": person.name,
        "first_name": person.name.split()[0] if person.name.split() else person.name,
        "department": person.department,
        "external_id": person.external_id,
        "years": "" if years is None else str(years),
    }
    return TOKEN.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def run_render(run: AutomationRun) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "automation_id": str(run.automation_id),
        "person_id": str(run.person_id) if run.person_id else None,
        "occurs_on": run.occurs_on.isoformat(),
        "occurrence": run.occurrence,
        "send_at": run.send_at.isoformat().replace("+00:00", "Z"),
        "status": run.status,
        "order_id": str(run.order_id) if run.order_id else None,
        "points_award_id": str(run.points_award_id) if run.points_award_id else None,
        "failure_code": run.failure_code or None,
        "failure_reason": run.failure_reason or None,
        "attempts": run.attempts,
    }


def reward_value(automation: Automation) -> dict[str, Any]:
    """What one person gets, as the API shows it: {"points": 500} or {"amount": "25.00", "currency": "USD"}."""
    if automation.points is not None:
        return {"points": automation.points}
    return {"amount": format_amount(automation.amount, automation.currency), "currency": automation.currency}


def _claim(*, automation: Automation, person_id: Any, occurs_on: date, occurrence: str, send_at: datetime,
           retry_until: datetime, status: str = RunStatus.SENT) -> AutomationRun | None:  # fmt: skip
    """The new run row, or None when this occurrence already has one (sent, failed, or being sent right now by
    another scheduler: the INSERT waits for that transaction and then does nothing)."""
    now = timezone.now()
    run = AutomationRun(
        id=uuid.uuid4(), automation=automation, person_id=person_id, occurs_on=occurs_on, occurrence=occurrence,
        send_at=send_at, retry_until=retry_until, status=status, attempts=1, created_at=now, updated_at=now,
    )  # fmt: skip
    table = AutomationRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, automation_id, person_id, occurs_on, occurrence, send_at, retry_until, status, "
            "failure_code, failure_reason, attempts, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '', '', 1, %s, %s) "
            "ON CONFLICT (automation_id, person_id, occurrence) DO NOTHING RETURNING id",
            [run.id, automation.id, person_id, occurs_on, occurrence, send_at, retry_until, run.status, now, now],
        )
        if cursor.fetchone() is None:
            return None
    version_bump(RUNS_VERSION)  # one fewer upcoming send: the Automations list's cached summary is stale
    run._state.adding = False  # the row exists now: save() must UPDATE it (a pk default would make it INSERT)
    return run


def _place(run: AutomationRun, automation: Automation, person: Person) -> None:
    """Create the run's order or points award (inside the caller's transaction, as a savepoint) and record the
    outcome on `run`."""
    from webhooks.events import event_emit

    years = years_since(automation, person, run.occurs_on)
    message = message_render(automation.message, person=person, years=years)
    try:
        with transaction.atomic():
            if automation.points is not None:
                fired = _award_points(run, automation, person, message)
            else:
                fired = _order(automation, person, message)
    except ApplicationError as exc:
        first = run.status != RunStatus.FAILED or run.attempts == 1
        run.status, run.failure_code, run.failure_reason = RunStatus.FAILED, exc.code[:40], exc.detail[:300]
        if first:
            event_emit(type="automation.failed", data=run_render(run))
        if exc.code in RETRYABLE:
            _alert_once(automation, run, exc.detail)
        logger.info("automation run failed", extra={"event": "automation.failed", "automation_id": str(automation.id),
                                                    "run_id": str(run.id), "code": exc.code})  # fmt: skip
        return
    run.status, run.failure_code, run.failure_reason = RunStatus.SENT, "", ""
    run.order_id = fired.get("order_id")
    run.points_award_id = fired.get("points_award_id")
    event_emit(type="automation.fired", data={**run_render(run), **{k: str(v) for k, v in fired.items()}})


def _order(automation: Automation, person: Person, message: str) -> dict[str, uuid.UUID]:
    from orders.create import order_create
    from orders.planning import RewardInput
    from orders.selectors import order_render

    reward = RewardInput(
        product_id=str(automation.product_id), amount=automation.amount, currency=automation.currency,
        delivery_method=automation.delivery_method, message=message, person_id=str(person.pk),
    )  # fmt: skip
    _, body, _ = order_create(
        order_type="link" if automation.delivery_method == "link" else "digital",
        rewards=[reward], idempotency_key=None, body_hash="", render=order_render,
        program_slug=automation.program.slug if automation.program is not None else None,
        automation_id=automation.id, created_by_email=f"automation:{automation.id}",
    )  # fmt: skip
    return {"order_id": uuid.UUID(body["id"]), "reward_id": uuid.UUID(body["rewards"][0]["id"])}


def _award_points(run: AutomationRun, automation: Automation, person: Person, message: str) -> dict[str, uuid.UUID]:
    """The points award, through the points app's awarder (automations.handoff). Its external id is the run's:
    the run row is unique per occurrence, so a retry or a second scheduler finds the same award, never a new one."""
    awarder = points_awarder()
    if awarder is None or automation.program is None or automation.points is None:
        raise ApplicationError("Points are not available on this installation.", code="points_unavailable")
    award_id = awarder(program=automation.program, person=person, points=automation.points,
                       reason=message or automation.name, external_id=f"automation_run:{run.id}")  # fmt: skip
    return {"points_award_id": award_id}


def _alert_once(automation: Automation, run: AutomationRun, detail: str) -> None:
    """Tell the tenant's funds alert list, once per automation and local day, that it could not pay."""
    day = run.retry_until.date()
    if not Automation.objects.filter(pk=automation.pk).exclude(funds_alerted_on=day).update(funds_alerted_on=day):
        return
    name = automation.name

    def send() -> None:
        from django.conf import settings
        from django.core.mail import send_mail

        from funds.selectors import low_balance_recipients

        recipients = low_balance_recipients()
        if recipients:
            send_mail(
                subject=f"Automation '{name}' could not send a reward",
                message=f"{detail}\nIt tries again today once funds arrive. Add funds from the Funds page of the "
                "rewards portal; the Automations page lists who is waiting.",
                from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=recipients, fail_silently=True,
            )  # fmt: skip

    transaction.on_commit(send)
    logger.warning(
        "automation cannot pay", extra={"event": "automation.funds_alert", "automation_id": str(automation.pk)}
    )


def automation_send(*, automation: Automation, person: Person, occurs_on: date, occurrence: str, send_at: datetime,
                    retry_until: datetime) -> AutomationRun | None:  # fmt: skip
    """Send `person` this occurrence's reward, exactly once: the run claimed and the order created in one
    transaction. None when the occurrence was already handled."""
    with transaction.atomic():
        run = _claim(automation=automation, person_id=person.pk, occurs_on=occurs_on, occurrence=occurrence,
                     send_at=send_at, retry_until=retry_until)  # fmt: skip
        if run is None:
            return None
        _place(run, automation, person)
        run.save(update_fields=OUTCOME_FIELDS)
    return run


def automation_pending_send(*, automation: Automation, person: Person, occurs_on: date, occurrence: str,
                            send_at: datetime, retry_until: datetime) -> AutomationRun | None:  # fmt: skip
    """Claim the occurrence now and leave it `pending` until `send_at` (the tick sends it); None when it already
    has a run."""
    with transaction.atomic():
        return _claim(automation=automation, person_id=person.pk, occurs_on=occurs_on, occurrence=occurrence,
                      send_at=send_at, retry_until=retry_until, status=RunStatus.PENDING)  # fmt: skip


def automation_runs_pending(*, now: datetime) -> int:
    """Send the pending runs (activities waiting for their send_time) that are due and whose local day is not over;
    each locked (SKIP LOCKED) so two ticks never send one twice."""
    sent = 0
    due = AutomationRun.objects.filter(status=RunStatus.PENDING, send_at__lte=now, retry_until__gt=now)
    for run_id in due.values_list("id", flat=True)[:1000]:
        with transaction.atomic():
            run = (
                AutomationRun.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("automation__program", "person")
                .filter(pk=run_id, status=RunStatus.PENDING)
                .first()
            )
            if run is None or run.person is None or not run.automation.enabled:
                continue
            run.updated_at = timezone.now()
            _place(run, run.automation, run.person)
            run.save(update_fields=OUTCOME_FIELDS)
            sent += 1
    return sent


def automation_runs_retry(*, now: datetime) -> int:
    """Try again the runs refused for money whose local day is not over, when the funds may cover them now."""
    from funds.selectors import balance_get

    retried = 0
    failed = AutomationRun.objects.filter(status=RunStatus.FAILED, failure_code__in=RETRYABLE, retry_until__gt=now)
    affordable: dict[str, bool] = {}
    rows = failed.values_list("id", "automation__currency", "automation__amount", "automation__points")[:1000]
    for run_id, currency, amount, points in rows:
        if points is not None:
            pass  # the award itself checks the program's funding currency: try it
        elif currency not in affordable:
            balance = balance_get(currency=currency)
            affordable[currency] = balance is None or balance.available >= amount  # another funding currency
        if points is None and not affordable[currency]:
            continue
        with transaction.atomic():
            run = (
                AutomationRun.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("automation__program", "person")
                .filter(pk=run_id, status=RunStatus.FAILED)
                .first()
            )
            if run is None or run.person is None or not run.automation.enabled:
                continue
            run.attempts += 1
            run.updated_at = timezone.now()
            _place(run, run.automation, run.person)
            run.save(update_fields=[*OUTCOME_FIELDS, "attempts"])
            retried += 1
    return retried


def automations_next_due() -> datetime | None:
    """When this schema next needs a tick (tenants.due): now while an enabled date automation exists (each
    minute's tick decides who is due, in their own time zone) or a refused run may still be retried; a pending
    run's send time; None for a schema with neither (activity automations react to the activity itself)."""
    now = timezone.now()
    runs = AutomationRun.objects.filter(retry_until__gt=now)
    if (
        Automation.objects.filter(enabled=True).exclude(trigger_type=TriggerType.ACTIVITY).exists()
        or runs.filter(status=RunStatus.FAILED, failure_code__in=RETRYABLE).exists()
    ):
        return now
    send_at: datetime | None = runs.filter(status=RunStatus.PENDING).aggregate(at=Min("send_at"))["at"]
    return send_at


def automations_tick(*, now: datetime | None = None, max_seconds: float = 50.0) -> dict[str, int]:
    """One scheduler pass in the current tenant schema: retries first, then every enabled date automation's due
    people, until `max_seconds` pass (the next tick goes on where this one stopped)."""
    from people.models import Person

    now = now or timezone.now()
    deadline = time.monotonic() + max_seconds
    counts = {"sent": 0, "failed": 0, "retried": automation_runs_retry(now=now),
              "pending_sent": automation_runs_pending(now=now)}  # fmt: skip
    automations = Automation.objects.filter(enabled=True).exclude(trigger_type=TriggerType.ACTIVITY)
    for automation in automations.select_related("program").order_by("created_at"):
        due = list(due_now(automation, now))
        people = Person.objects.in_bulk([item.person_id for item in due])
        for item in due:
            if time.monotonic() > deadline:
                return counts
            person = people.get(item.person_id)
            if person is None:
                continue  # erased since
            run = automation_send(automation=automation, person=person, occurs_on=item.occurs_on,
                                  occurrence=item.occurs_on.isoformat(), send_at=item.send_at,
                                  retry_until=item.retry_until)  # fmt: skip
            if run is not None:
                counts["sent" if run.status == RunStatus.SENT else "failed"] += 1
    if any(counts.values()):
        logger.info("automations tick", extra={"event": "automations.tick", **counts})
    return counts


def activity_react(activity: Activity) -> dict[str, Any]:
    """people.reactions: the automations an activity triggers send, now or at their send_time (a pending run), in
    the activity's transaction; a refusal is recorded on the run, never a failure of the activity."""
    person = activity.person
    if person is None:
        return {}
    automations = Automation.objects.filter(
        enabled=True, trigger_type=TriggerType.ACTIVITY, trigger_activity_type=activity.type
    ).select_related("program")
    fired = []
    for automation in automations:
        if not audience_matches(automation.audience, person):
            continue
        # Due at send_time on the local day `days_offset` after the activity's; when that moment has passed (an
        # activity at 15:00 for a 09:00 send_time, days_offset 0) it is sent now rather than a day late. A future
        # moment leaves a pending run the tick sends then. Either way a refusal for money is retried until the end
        # of the local day it was sent.
        tz = zone(person.timezone or tenant_timezone())
        now = timezone.now()
        local_day = timezone.localtime(activity.occurred_at, tz).date()
        send_at, retry_until = send_window(local_day, automation, tz)
        occurrence = f"activity:{activity.external_id}"
        if send_at > now:
            run = automation_pending_send(automation=automation, person=person, occurs_on=local_day,
                                          occurrence=occurrence, send_at=send_at, retry_until=retry_until)  # fmt: skip
        else:
            today = timezone.localtime(now, tz).date()
            retry_until = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=tz)
            run = automation_send(automation=automation, person=person, occurs_on=local_day, occurrence=occurrence,
                                  send_at=now, retry_until=retry_until)  # fmt: skip
        if run is not None:
            fired.append({"automation_id": str(automation.id), "status": run.status,
                          "order_id": str(run.order_id) if run.order_id else None,
                          **reward_value(automation),
                          "send_at": run.send_at.isoformat().replace("+00:00", "Z")})  # fmt: skip
    return {"automations": fired} if fired else {}
