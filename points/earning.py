"""Earning rules: what an activity (people.reactions) earns in points, and a refund taking it back.

The reaction runs in the activity's own transaction. Each rule's award is idempotent by
`activity:<activity external_id>:<rule id>`, so an activity earns once per rule; an activity that `reverses`
another takes back what is left of that one's awards. An award the tenant's funds cannot cover is reported in
the response (`refused`) instead of refusing the activity.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import Sum
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_action
from core.errors import ApplicationError, NotFoundError
from programs.models import Program
from programs.selectors import program_get

from .models import EarningPeriod, EarningRule, PointsAward
from .services import points_award, points_award_reverse

if TYPE_CHECKING:
    from people.models import Activity

logger = logging.getLogger(__name__)

MAX_POINTS_PER_ACTIVITY = 100_000_000


def register() -> None:
    from people.reactions import activity_reaction_register

    activity_reaction_register("points.earning_rules", activity_earn)


def _period_start(period: str, at: datetime) -> datetime:
    at = at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == EarningPeriod.QUARTERLY:
        return at.replace(month=3 * ((at.month - 1) // 3) + 1)
    if period == EarningPeriod.YEARLY:
        return at.replace(month=1)
    return at


def _convert(amount: Decimal, *, from_currency: str, to_currency: str) -> Decimal | None:
    if not from_currency or from_currency == to_currency:
        return amount
    from catalog.selectors import fx_rate_get

    fx = fx_rate_get(base=from_currency, quote=to_currency)
    return None if fx is None else amount * fx.rate


def rule_points(*, rule: EarningRule, activity: Activity) -> tuple[int, Decimal | None]:
    """(points, cashback in the program's currency or None) for one activity, before the per-period cap."""
    program = rule.program
    cashback = None
    if rule.points_fixed is not None:
        points = rule.points_fixed
    elif activity.amount is None or activity.amount <= 0:
        return 0, None
    elif rule.points_per_unit is not None:
        points = math.floor(activity.amount * rule.points_per_unit)
    else:
        assert rule.cashback_percent is not None and program.points_per_unit
        money = _convert(activity.amount * rule.cashback_percent / 100, from_currency=activity.currency,
                         to_currency=program.points_currency)  # fmt: skip
        if money is None:
            return 0, None
        points = math.floor(money * program.points_per_unit)
        cashback = Decimal(points) / program.points_per_unit
    if rule.cap_per_activity is not None:
        points = min(points, rule.cap_per_activity)
    return min(points, MAX_POINTS_PER_ACTIVITY), cashback


def activity_earn(activity: Activity) -> dict[str, Any]:
    """The reaction: awards for every enabled rule of the activity's type, or the reversal it names."""
    result: dict[str, Any] = {}
    if activity.reverses:
        reversed_points = 0
        for award_id in PointsAward.objects.filter(
            external_id__startswith=f"activity:{activity.reverses}:"
        ).values_list("pk", flat=True):
            _, points = points_award_reverse(award_id=award_id, reason=f"Reversed by {activity.external_id}",
                                             actor=None)  # fmt: skip
            reversed_points += points
        result["points_reversed"] = reversed_points
    if activity.person is None:
        return result
    earned: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    total = 0
    cashback_total: dict[str, Decimal] = {}
    rules = EarningRule.objects.filter(activity_type=activity.type, enabled=True, program__is_active=True,
                                       program__points_per_unit__isnull=False).select_related("program")  # fmt: skip
    for rule in rules.order_by("created_at", "id"):
        points, cashback = rule_points(rule=rule, activity=activity)
        if rule.cap_per_period is not None and points > 0:
            since = _period_start(rule.period, activity.occurred_at or timezone.now())
            earned_so_far = PointsAward.objects.filter(
                person=activity.person, transaction__reference=f"rule:{rule.id}", created_at__gte=since
            ).aggregate(total=Sum("points"))
            so_far = earned_so_far["total"] or 0
            points = min(points, max(rule.cap_per_period - so_far, 0))
        if points <= 0:
            continue
        try:
            award, _ = points_award(
                program=rule.program, person=activity.person, points=points,
                reason=f"{activity.type} {activity.external_id}"[:300],
                external_id=f"activity:{activity.external_id}:{rule.id}", reference=f"rule:{rule.id}", actor=None,
            )  # fmt: skip
        except ApplicationError as exc:
            refused.append({"rule_id": str(rule.id), "program": rule.program.slug, "code": exc.code})
            continue
        total += points
        earned.append({"rule_id": str(rule.id), "program": rule.program.slug, "points": points,
                       "award_id": str(award.id)})  # fmt: skip
        if cashback is not None and rule.program.points_per_unit:
            value = Decimal(points) / rule.program.points_per_unit
            currency = rule.program.points_currency
            cashback_total[currency] = cashback_total.get(currency, Decimal(0)) + value
    if earned or refused:
        result.update(points_earned=total, earned=earned)
        if refused:
            result["refused"] = refused
        if cashback_total:
            from core.money import format_amount

            result["cashback"] = [{"amount": format_amount(v, c), "currency": c} for c, v in cashback_total.items()]
    if earned:
        from webhooks.events import event_emit

        event_emit(type="activity.earned", data={"activity_id": str(activity.id), "external_id": activity.external_id,
                                                 "person_id": str(activity.person.pk), **result})  # fmt: skip
    return result


# --- Rules (the API's writes) --------------------------------------------------------------------------------

RULE_FIELDS = ("program", "activity_type", "points_fixed", "points_per_unit", "cashback_percent", "cap_per_activity",
               "cap_per_period", "period", "enabled")  # fmt: skip
EARN_WAYS = ("points_fixed", "points_per_unit", "cashback_percent")


def _clean(values: dict[str, Any], *, current: EarningRule | None) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    if unknown := sorted(set(values) - set(RULE_FIELDS)):
        errors.update({key: ["Unknown field."] for key in unknown})
    if "program" in values or current is None:
        try:
            program: Program = program_get(slug=str(values.get("program") or ""))
            if not program.has_points:
                errors["program"] = ["This program has no points currency."]
            fields["program"] = program
        except ApplicationError as exc:
            errors.update(exc.errors)
    if "activity_type" in values or current is None:
        text = values.get("activity_type")
        if not isinstance(text, str) or not text.strip() or len(text.strip()) > 100:
            errors["activity_type"] = ["The activity type, e.g. purchase (1-100 characters)."]
        else:
            fields["activity_type"] = text.strip()
    ways = [way for way in EARN_WAYS if values.get(way) is not None]
    if ways or current is None:
        if len(ways) != 1:
            errors["points_fixed"] = ["Exactly one of points_fixed, points_per_unit, cashback_percent."]
        for way in EARN_WAYS:
            fields[way] = None
        for way in ways:
            raw = values[way]
            if way == "points_fixed":
                if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_POINTS_PER_ACTIVITY:
                    errors[way] = ["A whole number of points, at least 1."]
                fields[way] = raw
                continue
            try:
                number = Decimal(str(raw))
            except ArithmeticError:
                number = Decimal(-1)
            limit = Decimal(100) if way == "cashback_percent" else Decimal(100_000)
            if isinstance(raw, bool) or not number.is_finite() or not 0 < number <= limit or number != round(number, 4):
                errors[way] = [f"A number above 0 and up to {limit}, at most 4 decimals."]
            fields[way] = number if number.is_finite() else None
    for cap in ("cap_per_activity", "cap_per_period"):
        if cap in values:
            raw = values[cap]
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int) or raw < 1):
                errors[cap] = ["A whole number of points, or null for no cap."]
            fields[cap] = raw
    if "period" in values:
        if values["period"] not in EarningPeriod.values:
            errors["period"] = [f"One of {', '.join(EarningPeriod.values)}."]
        fields["period"] = values["period"]
    if "enabled" in values:
        if not isinstance(values["enabled"], bool):
            errors["enabled"] = ["true or false."]
        fields["enabled"] = values["enabled"]
    if errors:
        detail = "; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in errors.items())
        raise ApplicationError(detail, code="validation_error", errors=errors)
    return fields


def earning_rule_create(*, values: dict[str, Any], actor: Actor | None) -> EarningRule:
    rule = EarningRule.objects.create(**_clean(values, current=None))
    audit_action(actor=actor, action="earning_rule.create", object_type="earning_rule", object_id=rule.id,
                 data={"program": rule.program.slug, "activity_type": rule.activity_type})  # fmt: skip
    return rule


def earning_rule_get(*, rule_id: object) -> EarningRule:
    try:
        rule = EarningRule.objects.select_related("program").filter(pk=uuid.UUID(str(rule_id))).first()
    except ValueError:
        rule = None
    if rule is None:
        raise NotFoundError("No such earning rule.")
    return rule


def earning_rule_update(*, rule: EarningRule, values: dict[str, Any], actor: Actor | None) -> EarningRule:
    fields = _clean(values, current=rule)
    for key, value in fields.items():
        setattr(rule, key, value)
    rule.save()
    audit_action(actor=actor, action="earning_rule.update", object_type="earning_rule", object_id=rule.id,
                 data={"changed": sorted(values)})  # fmt: skip
    return rule


def earning_rule_delete(*, rule: EarningRule, actor: Actor | None) -> None:
    audit_action(actor=actor, action="earning_rule.delete", object_type="earning_rule", object_id=rule.id,
                 data={"activity_type": rule.activity_type})  # fmt: skip
    rule.delete()
