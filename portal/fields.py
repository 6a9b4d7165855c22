"""Form fields for the portal: amounts as people type them ("1,000", "1,000.50"), read in the page's language
(core.money.parse_typed_amount); the API never takes these, it stays strict."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from core.errors import ApplicationError
from core.money import parse_typed_amount


class AmountField(forms.CharField):
    """A Decimal from what a person typed; `currency` (when the form knows it) also checks its minor units."""

    def __init__(self, *, currency: str | None = None, allow_zero: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
        super().__init__(**kwargs)
        self.currency = currency
        self.allow_zero = allow_zero

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        try:
            return parse_typed_amount(text, self.currency, allow_zero=self.allow_zero)
        except ApplicationError as exc:
            messages = [message for field_messages in exc.errors.values() for message in field_messages]
            raise forms.ValidationError(messages or [exc.detail]) from exc


def amount_text(value: Any) -> str:
    """An AmountField's Decimal as the services read amounts ("1000.50"); '' for none."""
    return "" if value is None else format(value, "f")
