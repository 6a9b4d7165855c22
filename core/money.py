"""Money: Decimal amounts at each currency's precision; strings in JSON; never floats."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

from core.errors import ApplicationError

# ISO 4217 minor units for the currencies we know; anything else defaults to 2.
CURRENCY_EXPONENTS: dict[str, int] = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3}
MAX_AMOUNT = Decimal("1000000000")


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS.get(currency.upper(), 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_EVEN)


# How people and programs write an amount here: ASCII digits, an optional point and decimals. Python's Decimal
# also takes "1e2", "٢٥" (Arabic-Indic digits), "１０" (full-width) and "NaN": none of those is a price anyone
# typed on purpose, and accepting them only makes two amounts that look different mean the same money.
AMOUNT_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+", re.ASCII)


def amount_text_ok(value: object) -> bool:
    """Whether `value` is an amount as this API writes them: a string (or a JSON integer) of ASCII digits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and AMOUNT_TEXT.fullmatch(value.strip()) is not None


def parse_amount(value: object, currency: str, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """A positive amount with no more decimals than the currency allows, or a validation_error."""
    amount = Decimal(str(value).strip()) if amount_text_ok(value) else None
    if amount is None or not amount.is_finite():
        raise ApplicationError(
            f'{str(value)[:40]!r} is not an amount: write it with digits and a point, e.g. "25.00".',
            code="validation_error",
            errors={field: ['Not an amount (digits and a point, e.g. "25.00").']},
        )
    if amount < 0 or (amount == 0 and not allow_zero) or amount > MAX_AMOUNT:
        raise ApplicationError(
            f"The amount must be positive and at most {MAX_AMOUNT}.",
            code="validation_error",
            errors={field: ["Must be positive."]},
        )
    if amount != quantize(amount, currency):
        places = exponent(currency)
        raise ApplicationError(
            f"{currency} amounts have at most {places} decimal places.",
            code="validation_error",
            errors={field: [f"At most {places} decimal places for {currency}."]},
        )
    return quantize(amount, currency)


def format_amount(amount: Decimal, currency: str) -> str:
    return str(quantize(amount, currency))


def parse_currency(value: object, *, field: str = "currency") -> str:
    code = str(value or "").strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ApplicationError(
            f"{value!r} is not an ISO 4217 currency code.",
            code="validation_error",
            errors={field: ["Use a code like USD."]},
        )
    return code
