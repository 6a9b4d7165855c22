"""Writes of automations: create, change, delete (run in the tenant's schema), each audited.

The reward is checked against the catalogue when the automation is saved (the product is orderable by this
tenant and program, the amount allowed), so a typo is a 422 now rather than a failed run on someone's birthday.
Runs are not rewritten: deleting an automation keeps the orders it placed (their `automation_id` stays).
"""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_record
from core.errors import ApplicationError
from core.money import parse_amount
from core.text import control_character_error

from .models import Automation, TriggerType

TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
ATTRIBUTE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
DELIVERY_METHODS = ("email", "sms", "link", "api")
AUDIENCE_KEYS = ("department", "country", "attributes")
MAX_DAYS_OFFSET = 60
MAX_POINTS = 100_000_000  # one award, as points.services.MAX_POINTS (which checks it again when awarding)


def _refuse(errors: dict[str, list[str]]) -> ApplicationError:
    detail = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
    return ApplicationError(detail, code="validation_error", errors=errors)


def _clean(data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """Model values from API-shaped `data` (the keys present only), problems added to `errors` by field path."""
    values: dict[str, Any] = {}
    if "name" in data:
        name = str(data["name"] or "").strip()
        if not name or len(name) > 200 or control_character_error(name):
            errors["name"] = ["Give a name of at most 200 characters, on one line."]
        values["name"] = name
    if "trigger" in data:
        trigger = data["trigger"] if isinstance(data["trigger"], dict) else {}
        kind = trigger.get("type")
        if kind not in TriggerType.values:
            errors["trigger.type"] = [f"Use one of {', '.join(TriggerType.values)}."]
        years = trigger.get("years") or []
        if not isinstance(years, list) or not all(isinstance(y, int) and 0 <= y <= 100 for y in years):
            errors["trigger.years"] = ["Give a list of whole years from 0 to 100, e.g. [1, 5, 10]."]
        elif years and kind not in (TriggerType.WORK_ANNIVERSARY, TriggerType.DATE_ATTRIBUTE):
            errors["trigger.years"] = ["Only anniversaries (work_anniversary, date_attribute) take years."]
        attribute = str(trigger.get("attribute") or "")
        if kind == TriggerType.DATE_ATTRIBUTE and not ATTRIBUTE_RE.match(attribute):
            errors["trigger.attribute"] = ["Name the attribute that holds the date (YYYY-MM-DD), e.g. certified_on."]
        activity_type = str(trigger.get("activity_type") or "").strip()
        if kind == TriggerType.ACTIVITY and (
            not activity_type or len(activity_type) > 100 or control_character_error(activity_type)
        ):
            errors["trigger.activity_type"] = ["Name the activity type, e.g. deal.closed."]
        values.update(trigger_type=kind, trigger_years=sorted(set(years)) if isinstance(years, list) else [],
                      trigger_attribute=attribute if kind == TriggerType.DATE_ATTRIBUTE else "",
                      trigger_activity_type=activity_type if kind == TriggerType.ACTIVITY else "")  # fmt: skip
    if "audience" in data:
        audience = data["audience"] or {}
        if not isinstance(audience, dict) or set(audience) - set(AUDIENCE_KEYS):
            errors["audience"] = [f"An object with {', '.join(AUDIENCE_KEYS)}."]
        else:
            for key in ("department", "country"):
                if not isinstance(audience.get(key, []), list) or not all(
                    isinstance(v, str) and not control_character_error(v) for v in audience.get(key, [])
                ):
                    errors[f"audience.{key}"] = ["Give a list of names."]
            attributes = audience.get("attributes", {})
            if not isinstance(attributes, dict) or not all(ATTRIBUTE_RE.match(str(k)) for k in attributes):
                errors["audience.attributes"] = ["Give an object of attribute names to values."]
            values["audience"] = {key: audience[key] for key in AUDIENCE_KEYS if audience.get(key)}
    if "reward" in data:
        reward = data["reward"] if isinstance(data["reward"], dict) else {}
        message = str(reward.get("message") or "")
        if len(message) > 2000 or control_character_error(message, multiline=True):
            errors["reward.message"] = ["At most 2000 characters, without control characters."]
        if "points" in reward:
            _clean_points(reward, values, errors)
            values["message"] = message
        else:
            method = reward.get("delivery_method") or "email"
            if method not in DELIVERY_METHODS:
                errors["reward.delivery_method"] = [f"Use one of {', '.join(DELIVERY_METHODS)}."]
            values.update(product_id=reward.get("product_id"), delivery_method=method, message=message, points=None,
                          currency=str(reward.get("currency") or "").upper(), amount=reward.get("amount"))  # fmt: skip
    if "send_time" in data:
        match = TIME_RE.match(str(data["send_time"] or ""))
        if match is None:
            errors["send_time"] = ["Use HH:MM on a 24-hour clock, e.g. 09:00."]
        else:
            values["send_time"] = time(int(match.group(1)), int(match.group(2)))
    if "days_offset" in data:
        offset = data["days_offset"]
        if not isinstance(offset, int) or isinstance(offset, bool) or abs(offset) > MAX_DAYS_OFFSET:
            errors["days_offset"] = [f"A whole number of days from -{MAX_DAYS_OFFSET} to {MAX_DAYS_OFFSET}."]
        values["days_offset"] = offset
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            errors["enabled"] = ["true or false."]
        values["enabled"] = data["enabled"]
    if "program" in data and "points" in values and values["points"] is not None:
        if data["program"] and "program" in values and str(data["program"]) != values["program"].slug:
            errors["program"] = ["A points reward spends from its own program (reward.program): give the same one."]
    elif "program" in data:
        values["program"] = None
        if data["program"]:
            from programs.selectors import program_get

            try:
                values["program"] = program_get(slug=str(data["program"]))
            except ApplicationError as exc:
                errors["program"] = [exc.detail]
    return values


def _clean_points(reward: dict[str, Any], values: dict[str, Any], errors: dict[str, list[str]]) -> None:
    """A points reward `{"points": 500, "program": "<slug>"}`: the program must have a points currency."""
    from programs.selectors import program_get

    points = reward["points"]
    if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= MAX_POINTS:
        errors["reward.points"] = [f"A whole number of points from 1 to {MAX_POINTS}."]
    extra = set(reward) - {"points", "program", "message"}
    if extra:
        errors["reward"] = [f"A points reward takes points, program and message, not {', '.join(sorted(extra))}."]
    try:
        program = program_get(slug=str(reward.get("program") or ""))
    except ApplicationError:
        errors["reward.program"] = ["Name the program whose points to award (its slug)."]
    else:
        if not program.has_points:
            errors["reward.program"] = [f"The program {program.slug!r} has no points currency."]
        values["program"] = program
    values.update(points=points, product_id=None, amount=0, currency="", delivery_method="email")


def _check_reward(automation: Automation, errors: dict[str, list[str]]) -> None:
    """The product is orderable (for the program) and the amount allowed: what an order would check."""
    from catalog.selectors import product_get_orderable, product_validate_amount

    try:
        product = product_get_orderable(product_id=str(automation.product_id), program=automation.program, country=None)
    except (ApplicationError, ValueError) as exc:
        errors["reward.product_id"] = [getattr(exc, "detail", "Unknown product.")]
        return
    if product.type == "physical":
        errors["reward.product_id"] = ["Automations send digital rewards and links; this product is shipped."]
    if automation.currency and automation.currency != product.currency:
        errors["reward.currency"] = [f"{product.name} is denominated in {product.currency}."]
    automation.currency = product.currency
    try:
        automation.amount = parse_amount(automation.amount, product.currency)
        product_validate_amount(product=product, amount=Decimal(automation.amount))
    except ApplicationError as exc:
        errors["reward.amount"] = [exc.detail]


def _save(automation: Automation, values: dict[str, Any], errors: dict[str, list[str]], creating: bool) -> None:
    for name, value in values.items():
        setattr(automation, name, value)
    if creating:
        for name in ("name", "trigger_type"):
            if not getattr(automation, name):
                errors.setdefault("trigger" if name == "trigger_type" else name, ["Required."])
        if not values.get("product_id") and values.get("points") is None:
            errors.setdefault("reward.product_id", ["Required."])
    if automation.points is not None:
        if not errors and "program" in values and (automation.program is None or not automation.program.has_points):
            errors.setdefault("program", ["A points reward needs a program with a points currency."])
    elif not errors and ({"product_id", "amount", "currency", "program"} & set(values)):
        _check_reward(automation, errors)
    if errors:
        raise _refuse(errors)


def automation_create(*, actor: Actor, data: dict[str, Any]) -> Automation:
    errors: dict[str, list[str]] = {}
    for required in ("name", "trigger", "reward"):
        if required not in data:
            errors[required] = ["Required."]
    values = _clean(data, errors)
    automation = Automation()
    _save(automation, values, errors, creating=True)
    with transaction.atomic():
        automation.save(force_insert=True)
        audit_record(actor=actor, action="automation.created", object_type="automation", object_id=automation.id,
                     data={"name": automation.name, "trigger": automation.trigger_type})  # fmt: skip
    return automation


def automation_update(*, actor: Actor, automation: Automation, data: dict[str, Any]) -> Automation:
    errors: dict[str, list[str]] = {}
    values = _clean(data, errors)
    with transaction.atomic():
        automation = Automation.objects.select_for_update(of=("self",)).select_related("program").get(pk=automation.pk)
        _save(automation, values, errors, creating=False)
        automation.updated_at = timezone.now()
        automation.save()
        audit_record(actor=actor, action="automation.updated", object_type="automation", object_id=automation.id,
                     data={"changed": sorted(data)})  # fmt: skip
    return automation


def automation_delete(*, actor: Actor, automation: Automation) -> None:
    with transaction.atomic():
        automation_id = automation.id
        automation.delete()
        audit_record(actor=actor, action="automation.deleted", object_type="automation", object_id=automation_id)
