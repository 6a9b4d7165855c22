"""Template filters for portal pages: `{% load portal_tags %}`."""

from __future__ import annotations

from decimal import Decimal

from django import template

from core.money import format_number

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """An amount at its currency's precision, grouped the way the page's language writes numbers: `1,250.00`
    (USD), `5,000` (JPY), `1.500` (BHD)."""
    if amount is None:
        return ""
    return format_number(Decimal(amount), currency)
