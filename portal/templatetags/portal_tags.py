"""Template filters for portal pages: `{% load portal_tags %}`."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.translation import gettext as _

from core.money import format_number

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """An amount at its currency's precision, grouped the way the page's language writes numbers: `1,250.00`
    (USD), `5,000` (JPY), `1.500` (BHD)."""
    if amount is None:
        return ""
    return format_number(Decimal(amount), currency)


@register.filter
def actor(label: str | None) -> str:
    """Who did something (an audit actor label: `staff:a@example.com`, `api-key:<key id>`, `system`) the way
    the order page names them: the colleague's email, `API key <key id>`, `the system`."""
    kind, _sep, who = (label or "").partition(":")
    if kind in ("staff", "operator", "cli") and who:
        return who
    if kind == "api-key" and who:
        return _("API key %(key)s") % {"key": who}
    if kind == "system":
        return _("the system")
    return label or ""
