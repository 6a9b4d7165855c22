"""Writes for a tenant's programs and catalogue curation (run inside the tenant's schema)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_action
from catalog.models import Brand, Product, StoredImage
from core.errors import ApplicationError
from core.money import parse_amount, parse_currency
from core.text import control_character_error

from .models import CLAIM_DAYS_MAX, BudgetPeriod, CatalogRule, CatalogRuleMode, ClaimVerification, ExpiryPolicy, Program

PROGRAM_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,58}[a-z0-9]$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
# `logo`: the key of a logo uploaded to the platform (catalog.images), the only logo recipients see;
# `logo_url` is kept for API clients that set it but never shown (hot-linked images break and track).
BRANDING_KEYS = ("logo", "logo_url", "primary_color")
# Reminder schedules: at most this many of each kind, each a whole number of days within the claim window.
REMINDERS_MAX = 5
REMINDER_KINDS = ("after_days", "before_expiry_days")
# API names (see _claim_settings): how the program's claim links and reward emails behave.
CLAIM_SETTINGS = ("claim_days", "on_expiry", "reminders", "verification", "track_email_opens")


def _refuse(errors: dict[str, list[str]]) -> ApplicationError:
    detail = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    return ApplicationError(detail, code="validation_error", errors=errors)


def _product_ids(values: Iterable[Any], *, field: str, errors: dict[str, list[str]]) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    bad: list[str] = []
    for value in values:
        try:
            ids.append(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
        except ValueError:
            bad.append(str(value))
    ids = sorted(set(ids), key=str)
    known = {str(pk) for pk in Product.objects.filter(pk__in=ids).values_list("pk", flat=True)}
    bad += [str(pk) for pk in ids if str(pk) not in known]
    if bad:
        errors[field] = [f"Unknown product id(s): {', '.join(bad)}."]
    return ids


def _branding(value: dict[str, Any] | None, errors: dict[str, list[str]]) -> dict[str, str]:
    branding = dict(value or {})
    unknown = sorted(set(branding) - set(BRANDING_KEYS))
    problems = [f"Unknown key(s) {', '.join(unknown)}; use {', '.join(BRANDING_KEYS)}."] if unknown else []
    if branding.get("logo_url"):
        try:
            URLValidator(schemes=["https", "http"])(branding["logo_url"])
        except ValidationError:
            problems.append("logo_url must be an http(s) URL.")
    if branding.get("logo") and not StoredImage.objects.filter(key=str(branding["logo"])).exists():
        problems.append("logo must be the id of an uploaded logo (POST /api/v1/logos).")
    if branding.get("primary_color") and not COLOR_RE.match(str(branding["primary_color"])):
        problems.append("primary_color must look like #1A2B3C.")
    if problems:
        errors["branding"] = problems
    return {key: str(branding[key]) for key in BRANDING_KEYS if branding.get(key)}


LOCALES = tuple(code for code, _ in settings.LANGUAGES)  # the languages the platform serves
POINTS_KEYS = ("name", "points_per_unit", "currency", "expire_after_days", "self_redeem")
LEDGER_SCALE = 10_000  # the funds ledger keeps four decimals: a point's value 1/ppu must be exact in them


def _points(value: dict[str, Any] | None, errors: dict[str, list[str]], *, current: Program | None) -> dict[str, Any]:
    """The points currency's model fields from the API shape `{"name", "points_per_unit", "currency",
    "expire_after_days", "self_redeem"}`; None or {} means no points (only while none were ever set)."""
    if not value:
        if current is not None and current.has_points:
            errors["points"] = ["A program's points currency cannot be removed once set."]
        return {"points_name": "", "points_per_unit": None, "points_currency": "",
                "points_expire_after_days": None, "points_self_redeem": False}  # fmt: skip
    if not isinstance(value, dict):
        errors["points"] = ["An object: name, points_per_unit, currency, expire_after_days, self_redeem."]
        return {}
    problems: dict[str, str] = {}
    if unknown := sorted(set(value) - set(POINTS_KEYS)):
        problems["points"] = f"Unknown key(s) {', '.join(map(str, unknown))}; use {', '.join(POINTS_KEYS)}."
    name = value.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 40 or control_character_error(name):
        problems["points.name"] = "Name the points (1-40 characters), e.g. Kudos."
    rate = value.get("points_per_unit")
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= LEDGER_SCALE or LEDGER_SCALE % rate:
        problems["points.points_per_unit"] = (
            "A whole number of points per unit that divides 10000 (1, 10, 100, 1000, …) so a point's value is exact."
        )
    currency = ""
    try:
        currency = parse_currency(value.get("currency"), field="points.currency")
    except ApplicationError as exc:
        problems.update({key: " ".join(msgs) for key, msgs in exc.errors.items()})
    days = value.get("expire_after_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650):
        problems["points.expire_after_days"] = "Days from award to expiry, 1-3650, or null for never."
    self_redeem = value.get("self_redeem", False)
    if not isinstance(self_redeem, bool):
        problems["points.self_redeem"] = "true or false."
    if current is not None and current.has_points and "points.points_per_unit" not in problems:
        if (rate, currency) != (current.points_per_unit, current.points_currency):
            problems["points.points_per_unit"] = (
                f"Fixed at {current.points_per_unit} per {current.points_currency}: outstanding points hold money "
                "at that rate."
            )
    for key, message in problems.items():
        errors[key] = [message]
    if problems or not isinstance(name, str):
        return {}
    return {"points_name": name.strip(), "points_per_unit": rate, "points_currency": currency,
            "points_expire_after_days": days, "points_self_redeem": self_redeem}  # fmt: skip


def _budget(
    amount_value: object, currency_value: object, period: object, errors: dict[str, list[str]]
) -> dict[str, Any]:
    if period not in BudgetPeriod.values:
        errors["budget_period"] = [f"One of {', '.join(BudgetPeriod.values)}."]
    amount = None
    currency = ""
    if amount_value not in (None, "") and period == BudgetPeriod.NONE:
        errors["budget_period"] = ["A budget amount needs a period: monthly, quarterly or yearly."]
    elif amount_value not in (None, ""):
        try:
            currency = parse_currency(currency_value, field="budget_currency")
            amount = parse_amount(amount_value, currency, field="budget_amount")
        except ApplicationError as exc:
            errors.update(exc.errors)
    elif currency_value:
        errors["budget_amount"] = ["A budget currency needs a budget amount."]
    elif period != BudgetPeriod.NONE and "budget_period" not in errors:
        errors["budget_amount"] = [f"A {period} budget needs an amount."]
    return {"budget_amount": amount, "budget_currency": currency, "budget_period": period}


def _text(
    value: object,
    *,
    field: str,
    errors: dict[str, list[str]],
    limit: int,
    required: bool = False,
    multiline: bool = False,
) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if value is not None and not isinstance(value, str):
        errors[field] = ["Text expected."]
    elif required and not text:
        errors[field] = ["The name may not be blank."]
    elif len(text) > limit:
        errors[field] = [f"At most {limit} characters."]
    elif problem := control_character_error(text, multiline=multiline):
        errors[field] = [problem]
    return text


def _locale(value: object, errors: dict[str, list[str]]) -> str:
    locale = value.strip().lower() if isinstance(value, str) else ""
    if locale and locale not in LOCALES:
        errors["default_locale"] = [f"One of {', '.join(LOCALES)} (or empty for the tenant's)."]
    return locale


def program_create(
    *,
    slug: str,
    name: str,
    budget_amount: Decimal | str | None = None,
    budget_currency: str = "",
    budget_period: str = BudgetPeriod.NONE,
    allowed_product_ids: Iterable[uuid.UUID | str] = (),
    default_message: str = "",
    sender_name: str = "",
    branding: dict[str, Any] | None = None,  # a JSON object from the client, checked by _branding
    default_locale: str = "",
    points: dict[str, Any] | None = None,  # the API's points object, checked by _points
    is_active: bool = True,
    actor: Actor | None = None,
    **claim_settings: Any,  # claim_days, on_expiry, reminders, verification (see _claim_settings)
) -> Program:
    """A program in the current tenant. A budget is an amount per month, quarter or year; period `none`
    (the default, with no amount) means unlimited. Audited as `program.create`."""
    slug = (slug or "").strip().lower()
    errors: dict[str, list[str]] = {}
    if not PROGRAM_SLUG_RE.match(slug) or "--" in slug:
        errors["slug"] = ["Use 2-60 lowercase letters, digits and single hyphens."]
    elif Program.objects.filter(slug=slug).exists():
        errors["slug"] = [f"A program {slug!r} already exists."]
    fields: dict[str, Any] = {
        "name": _text(name, field="name", errors=errors, limit=200, required=True),
        **_budget(budget_amount, budget_currency, budget_period, errors),
        "allowed_product_ids": _product_ids(allowed_product_ids, field="allowed_product_ids", errors=errors),
        "default_message": _text(default_message, field="default_message", errors=errors, limit=2000, multiline=True),
        "sender_name": _text(sender_name, field="sender_name", errors=errors, limit=200),
        "branding": _branding(branding, errors),
        "default_locale": _locale(default_locale, errors),
        **_points(points, errors, current=None),
        **_claim_settings(claim_settings, errors),
    }
    if unknown := sorted(set(claim_settings) - set(CLAIM_SETTINGS)):
        raise TypeError(f"program_create() got unexpected keyword arguments {unknown}")
    if errors:
        raise _refuse(errors)
    with transaction.atomic():
        program = Program.objects.create(slug=slug, is_active=is_active, **fields)
        audit_action(actor=actor, action="program.create", object_type="program", object_id=slug,
                     data={"name": program.name, "points": bool(program.points_per_unit)})  # fmt: skip
    return program


PROGRAM_UPDATABLE = (
    "name", "budget", "allowed_product_ids", "default_message", "sender_name", "branding", "default_locale",
    "points", "is_active", *CLAIM_SETTINGS,
)  # fmt: skip


def program_update(*, program: Program, changes: dict[str, Any], actor: Actor | None) -> Program:
    """Change some of a program's settings (`changes` holds only what the caller sent; `budget` is
    `{"amount", "currency", "period"}`). The slug stays: orders and links name it. Audited as `program.update`."""
    errors: dict[str, list[str]] = {}
    if unknown := sorted(set(changes) - set(PROGRAM_UPDATABLE)):
        raise _refuse({key: ["This field cannot be changed."] for key in unknown})
    fields: dict[str, Any] = {}
    if "name" in changes:
        fields["name"] = _text(changes["name"], field="name", errors=errors, limit=200, required=True)
    if "budget" in changes:
        budget = changes["budget"] or {}
        fields.update(_budget(budget.get("amount"), budget.get("currency", ""),
                              budget.get("period") or BudgetPeriod.NONE, errors))  # fmt: skip
    if "allowed_product_ids" in changes:
        ids = changes["allowed_product_ids"] or []
        fields["allowed_product_ids"] = _product_ids(ids, field="allowed_product_ids", errors=errors)
    for key, limit in (("default_message", 2000), ("sender_name", 200)):
        if key in changes:
            multiline = key == "default_message"
            fields[key] = _text(changes[key] or "", field=key, errors=errors, limit=limit, multiline=multiline)
    if "branding" in changes:
        fields["branding"] = _branding(changes["branding"], errors)
    if "default_locale" in changes:
        fields["default_locale"] = _locale(changes["default_locale"], errors)
    if "points" in changes:
        fields.update(_points(changes["points"], errors, current=program))
    fields.update(_claim_settings(changes, errors))
    if "is_active" in changes:
        if not isinstance(changes["is_active"], bool):
            errors["is_active"] = ["true or false."]
        fields["is_active"] = changes["is_active"]
    if errors:
        raise _refuse(errors)
    with transaction.atomic():
        locked = Program.objects.select_for_update().get(pk=program.pk)
        if "points" in changes and not changes["points"] and locked.has_points:
            raise _refuse({"points": ["A program's points currency cannot be removed once set."]})
        for key, value in fields.items():
            setattr(locked, key, value)
        locked.save(update_fields=list(fields) or None)
        audit_action(actor=actor, action="program.update", object_type="program", object_id=locked.slug,
                     data={"changed": sorted(changes)})  # fmt: skip
    return locked


def _claim_days(value: Any, errors: dict[str, list[str]]) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        errors["claim_days"] = ["A whole number of days, 1 to 3650 (or null for the installation's default)."]
        return None
    days = int(value)
    if not 1 <= days <= CLAIM_DAYS_MAX:
        errors["claim_days"] = ["A whole number of days, 1 to 3650 (or null for the installation's default)."]
    return days


def _reminders(value: Any, errors: dict[str, list[str]]) -> dict[str, list[int]]:
    """{"after_days": [3, 7], "before_expiry_days": [7]} with sorted, distinct days; {} = no reminders."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        errors["reminders"] = ['An object like {"after_days": [3, 7], "before_expiry_days": [7]}.']
        return {}
    problems = [f"Unknown key {key!r}; use {', '.join(REMINDER_KINDS)}." for key in value if key not in REMINDER_KINDS]
    clean: dict[str, list[int]] = {}
    for kind in REMINDER_KINDS:
        days = value.get(kind) or []
        if not isinstance(days, list) or not all(
            isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= CLAIM_DAYS_MAX for day in days
        ):
            problems.append(f"{kind}: a list of whole numbers of days, 1 to {CLAIM_DAYS_MAX}.")
        elif len(set(days)) > REMINDERS_MAX:
            problems.append(f"{kind}: at most {REMINDERS_MAX} reminders.")
        elif days:
            clean[kind] = sorted(set(days))
    if problems:
        errors["reminders"] = problems
    return clean


def _claim_settings(values: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """Model fields for the claim settings present in `values`: how the program's claim links behave (the claim
    window, what expiry does with unclaimed value, reminders, verification of new browsers). A new window
    applies to rewards created from then on: a sent link keeps its date."""
    fields: dict[str, Any] = {}
    if "claim_days" in values:
        fields["claim_days"] = _claim_days(values["claim_days"], errors)
    if "on_expiry" in values:
        if values["on_expiry"] not in ExpiryPolicy.values:
            errors["on_expiry"] = [f"One of {', '.join(ExpiryPolicy.values)}."]
        fields["on_expiry"] = values["on_expiry"]
    if "reminders" in values:
        fields["reminders"] = _reminders(values["reminders"], errors)
    if "verification" in values:
        if values["verification"] not in ClaimVerification.values:
            errors["verification"] = [f"One of {', '.join(ClaimVerification.values)}."]
        fields["claim_verification"] = values["verification"]
    if "track_email_opens" in values:
        fields["track_email_opens"] = bool(values["track_email_opens"])
    return fields


def program_set_active(*, program: Program, is_active: bool) -> Program:
    Program.objects.filter(pk=program.pk).update(is_active=is_active)
    program.is_active = is_active
    return program


def catalog_rule_set(
    *, mode: str, product_ids: Iterable[uuid.UUID | str] = (), brand_slugs: Iterable[str] = ()
) -> CatalogRule | None:
    """Replace the tenant's allow or deny rule; with no products and no brands the rule is removed.

    Semantics (see catalog.selectors.Curation): an allow rule limits orderable products to those it
    names (by id or brand); a deny rule removes products and always wins over allow.
    """
    errors: dict[str, list[str]] = {}
    if mode not in CatalogRuleMode.values:
        raise _refuse({"mode": ["allow or deny."]})
    ids = _product_ids(product_ids, field="product_ids", errors=errors)
    slugs = sorted({slug.strip().lower() for slug in brand_slugs if slug and slug.strip()})
    known = set(Brand.objects.filter(slug__in=slugs).values_list("slug", flat=True))
    if unknown := [slug for slug in slugs if slug not in known]:
        errors["brand_slugs"] = [f"Unknown brand(s): {', '.join(unknown)}."]
    if errors:
        raise _refuse(errors)
    with transaction.atomic():
        if not ids and not slugs:
            CatalogRule.objects.filter(mode=mode).delete()
            return None
        rule, _ = CatalogRule.objects.update_or_create(
            mode=mode, defaults={"product_ids": ids, "brand_slugs": slugs, "updated_at": timezone.now()}
        )
    return rule
