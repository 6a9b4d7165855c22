"""Writes for a tenant's programs and catalogue curation (run inside the tenant's schema)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from catalog.models import Brand, Product
from core.errors import ApplicationError
from core.money import parse_amount, parse_currency

from .models import BudgetPeriod, CatalogRule, CatalogRuleMode, Program

PROGRAM_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,58}[a-z0-9]$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
BRANDING_KEYS = ("logo_url", "primary_color")


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
    if branding.get("primary_color") and not COLOR_RE.match(str(branding["primary_color"])):
        problems.append("primary_color must look like #1A2B3C.")
    if problems:
        errors["branding"] = problems
    return {key: str(branding[key]) for key in BRANDING_KEYS if branding.get(key)}


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
    is_active: bool = True,
) -> Program:
    """A program in the current tenant. A budget is an amount per month, quarter or year; period `none`
    (the default, with no amount) means unlimited."""
    slug = (slug or "").strip().lower()
    errors: dict[str, list[str]] = {}
    if not PROGRAM_SLUG_RE.match(slug) or "--" in slug:
        errors["slug"] = ["Use 2-60 lowercase letters, digits and single hyphens."]
    elif Program.objects.filter(slug=slug).exists():
        errors["slug"] = [f"A program {slug!r} already exists."]
    if not (name or "").strip():
        errors["name"] = ["The name may not be blank."]
    if budget_period not in BudgetPeriod.values:
        errors["budget_period"] = [f"One of {', '.join(BudgetPeriod.values)}."]
    amount = None
    currency = ""
    if budget_amount not in (None, "") and budget_period == BudgetPeriod.NONE:
        errors["budget_period"] = ["A budget amount needs a period: monthly, quarterly or yearly."]
    elif budget_amount not in (None, ""):
        try:
            currency = parse_currency(budget_currency, field="budget_currency")
            amount = parse_amount(budget_amount, currency, field="budget_amount")
        except ApplicationError as exc:
            errors.update(exc.errors)
    elif budget_currency:
        errors["budget_amount"] = ["A budget currency needs a budget amount."]
    elif budget_period != BudgetPeriod.NONE and "budget_period" not in errors:
        errors["budget_amount"] = [f"A {budget_period} budget needs an amount."]
    product_ids = _product_ids(allowed_product_ids, field="allowed_product_ids", errors=errors)
    clean_branding = _branding(branding, errors)
    if errors:
        raise _refuse(errors)
    return Program.objects.create(
        slug=slug,
        name=name.strip(),
        budget_amount=amount,
        budget_currency=currency,
        budget_period=budget_period,
        allowed_product_ids=product_ids,
        default_message=default_message.strip(),
        sender_name=sender_name.strip(),
        branding=clean_branding,
        is_active=is_active,
    )


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
