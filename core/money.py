"""Money: Decimal amounts at each currency's precision; strings in JSON; never floats. Minor units and the way
money is written for people (symbols, grouping) come from CLDR through Babel, for every currency."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

from babel.numbers import (
    NumberFormatError,
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    parse_decimal,
)
from django.utils import translation
from django.utils.translation import gettext as _

from core.errors import ApplicationError

MAX_AMOUNT = Decimal("1000000000")


@lru_cache(maxsize=512)
def exponent(currency: str) -> int:
    """The currency's minor units (CLDR's `digits`: JPY, VND, KRW 0; BHD, KWD, TND 3; MYR, USD 2). CLDR follows
    ISO 4217 except where no smaller coin circulates (IQD, IRR: 0 in CLDR); an unknown code has 2."""
    return int(get_currency_precision(currency.upper()))


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_EVEN)


# How people and programs write an amount here: ASCII digits, an optional point and decimals. Python's Decimal
# also takes "1e2", "٢٥" (Arabic-Indic digits), "１０" (full-width) and "NaN": none of those is a price anyone
# typed on purpose, and accepting them only makes two amounts that look different mean the same money.
AMOUNT_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+", re.ASCII)


def amount_text_ok(value: object) -> bool:
    """Whether `value` is an amount as this API writes them: a string (or a JSON integer) of ASCII digits, or a
    Decimal our own code passes on."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if isinstance(value, Decimal):  # from our own code (a stored amount), not from a client
        return value.is_finite()
    return isinstance(value, str) and AMOUNT_TEXT.fullmatch(value.strip()) is not None


def parse_amount(value: object, currency: str, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """A positive amount with no more decimals than the currency allows, or a validation_error."""
    amount = Decimal(str(value).strip()) if amount_text_ok(value) else None
    if amount is None or not amount.is_finite():
        raise ApplicationError(
            _('%(value)r is not an amount: write it with digits and a point, e.g. "25.00".')
            % {"value": str(value)[:40]},
            code="validation_error",
            errors={field: [_('Not an amount (digits and a point, e.g. "25.00").')]},
        )
    return _amount_checked(amount, currency, field=field, allow_zero=allow_zero)


def _amount_checked(amount: Decimal, currency: str | None, *, field: str, allow_zero: bool) -> Decimal:
    if amount < 0 or (amount == 0 and not allow_zero) or amount > MAX_AMOUNT:
        raise ApplicationError(
            _("The amount must be positive and at most %(max)s.") % {"max": MAX_AMOUNT},
            code="validation_error",
            errors={field: [_("Must be positive.")]},
        )
    if currency is None:
        return amount
    if amount != quantize(amount, currency):
        places = exponent(currency)
        raise ApplicationError(
            _("%(currency)s amounts have at most %(places)d decimal places.")
            % {"currency": currency, "places": places},
            code="validation_error",
            errors={
                field: [
                    _("At most %(places)d decimal places for %(currency)s.") % {"places": places, "currency": currency}
                ]
            },
        )
    return quantize(amount, currency)


def _babel_locale(locale: str | None) -> str:
    return translation.to_locale(locale or translation.get_language() or "en")


def parse_typed_amount(
    value: object, currency: str | None, *, locale: str | None = None, field: str = "amount", allow_zero: bool = False
) -> Decimal:
    """An amount as a person types it in the portal, in their language's way ("1,000", "1,000.50" in en and ms):
    ASCII digits with the locale's grouping and decimal signs, then the rules of parse_amount (with `currency`
    None, its minor units are left to the service that knows it). The API stays strict: parse_amount."""
    text = str(value if value is not None else "").strip()
    where = _babel_locale(locale)
    signs = {get_group_symbol(where), get_decimal_symbol(where)}
    if not text or not all(char in "0123456789" or char in signs for char in text) or not text[0].isdigit():
        raise ApplicationError(
            _("%(value)r is not an amount: write it with digits, e.g. 1,000 or 25.50.") % {"value": text[:40]},
            code="validation_error",
            errors={field: [_("Not an amount: write it with digits, e.g. 1,000 or 25.50.")]},
        )
    try:
        amount = parse_decimal(text, locale=where, strict=True)
    except NumberFormatError as exc:
        raise ApplicationError(
            _("%(value)r is not an amount: check the separators, e.g. 1,000.50.") % {"value": text[:40]},
            code="validation_error",
            errors={field: [_("Check the separators, e.g. 1,000.50.")]},
        ) from exc
    return _amount_checked(amount, currency, field=field, allow_zero=allow_zero)


def format_amount(amount: Decimal, currency: str) -> str:
    """The API's way: digits and a point at the currency's precision ("1250.00", "5000")."""
    return str(quantize(amount, currency))


def format_number(amount: Decimal, currency: str, *, locale: str | None = None) -> str:
    """The number for people, grouped, at the currency's precision, in the active language ("1,250.00")."""
    places = exponent(currency)
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return str(format_decimal(quantize(amount, currency), format=pattern, locale=_babel_locale(locale)))


def format_money(amount: Decimal, currency: str, *, locale: str | None = None) -> str:
    """Money for people, in the active language: "RM1,250.00", "¥5,000 JPY", "$25.00 USD", "BHD1.500". A bare
    sign ($, ¥, €, £ — shared by several currencies) gets the ISO code after it; a sign with letters needs none."""
    where = _babel_locale(locale)
    text = str(format_currency(quantize(amount, currency), currency, locale=where))
    symbol = str(get_currency_symbol(currency, locale=where))
    return text if any(char.isalpha() for char in symbol) else f"{text} {currency}"


def parse_currency(value: object, *, field: str = "currency") -> str:
    code = str(value or "").strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ApplicationError(
            f"{value!r} is not an ISO 4217 currency code.",
            code="validation_error",
            errors={field: ["Use a code like USD."]},
        )
    return code
