"""Template filters for portal pages: `{% load portal_tags %}`."""

from __future__ import annotations

from decimal import Decimal

from django import template

from core.money import exponent, quantize

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """An amount at its currency's precision with thousands separators: `1,250.00` (USD), `5,000` (JPY)."""
    if amount is None:
        return ""
    return f"{quantize(Decimal(amount), currency):,.{exponent(currency)}f}"
