"""Reads of a tenant's programs and curation rules (run inside the tenant's schema)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import QuerySet

from core.errors import ApplicationError, NotFoundError

from .models import BudgetPeriod, CatalogRule, Program


def program_get(*, slug: str) -> Program:
    """An active program to order under; `validation_error` (422, field `program`) otherwise."""
    program = Program.objects.filter(slug=(slug or "").strip().lower()).first()
    if program is None:
        message = f"Unknown program {slug!r}."
    elif not program.is_active:
        message = f"The program {slug!r} is inactive."
    else:
        return program
    raise ApplicationError(message, code="validation_error", status=422, errors={"program": [message]})


def program_list(*, is_active: bool | None = None) -> QuerySet[Program]:
    queryset = Program.objects.all()
    if is_active is not None:
        queryset = queryset.filter(is_active=is_active)
    return queryset


def program_detail_get(*, slug: str) -> Program:
    """Any program of this tenant, active or not (for reading); NotFoundError otherwise."""
    program = Program.objects.filter(slug=(slug or "").strip().lower()).first()
    if program is None:
        raise NotFoundError("No such program.")
    return program


def program_budget_period_start(*, program: Program, at: datetime) -> datetime | None:
    """Start of the budget period containing `at` (UTC calendar), or None for period `none`.

    Spend since this instant is what counts against `budget_amount`.
    """
    at = at.astimezone(UTC)
    if program.budget_period == BudgetPeriod.MONTHLY:
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if program.budget_period == BudgetPeriod.QUARTERLY:
        month = 3 * ((at.month - 1) // 3) + 1
        return at.replace(month=month, day=1, hour=0, minute=0, second=0, microsecond=0)
    if program.budget_period == BudgetPeriod.YEARLY:
        return at.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


def catalog_rule_list() -> QuerySet[CatalogRule]:
    return CatalogRule.objects.all()
