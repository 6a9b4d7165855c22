"""Money for people and for the API: every currency's minor units from CLDR, amounts with more decimals refused,
locale-aware formatting (en, ms), and amounts typed the way people type them in the portal."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from core.errors import ApplicationError
from core.money import exponent, format_money, format_number, parse_amount, parse_typed_amount


@pytest.mark.parametrize(
    ("currency", "places"),
    [("JPY", 0), ("VND", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3), ("TND", 3), ("MYR", 2), ("USD", 2), ("ISK", 0)],
)
def test_minor_units_come_from_cldr_for_every_currency(currency, places):
    assert exponent(currency) == places


def test_an_amount_with_more_decimals_than_the_currency_allows_is_refused():
    assert parse_amount("5000", "JPY") == Decimal("5000")
    assert parse_amount("1.505", "BHD") == Decimal("1.505")
    assert parse_amount("25.5", "MYR") == Decimal("25.50")
    for value, currency, places in (("5000.5", "JPY", 0), ("1.5055", "BHD", 3), ("25.505", "MYR", 2)):
        with pytest.raises(ApplicationError) as refused:
            parse_amount(value, currency)
        assert refused.value.code == "validation_error"
        assert refused.value.errors == {"amount": [f"At most {places} decimal places for {currency}."]}


def test_the_api_stays_strict_about_what_an_amount_looks_like():
    for value in ("1,000", "1e3", "٢٥", "NaN", "-5"):
        with pytest.raises(ApplicationError):
            parse_amount(value, "USD")


def test_money_is_written_the_way_each_language_writes_it():
    amounts = {"JPY": Decimal("5000"), "BHD": Decimal("1.5"), "MYR": Decimal("1250.5"), "USD": Decimal("25")}
    with translation.override("en"):
        shown = {currency: format_money(amount, currency) for currency, amount in amounts.items()}
        assert format_number(Decimal("1234567.5"), "MYR") == "1,234,567.50"
    assert shown == {"JPY": "¥5,000 JPY", "BHD": "BHD1.500", "MYR": "MYR1,250.50", "USD": "$25.00 USD"}
    with translation.override("ms"):
        shown = {currency: format_money(amount, currency) for currency, amount in amounts.items()}
    assert shown == {"JPY": "JP¥5,000", "BHD": "BHD1.500", "MYR": "RM1,250.50", "USD": "USD25.00"}


def test_the_portal_reads_amounts_as_people_type_them():
    with translation.override("ms"):
        assert parse_typed_amount("1,000", "MYR") == Decimal("1000.00")
        assert parse_typed_amount(" 1,000.50 ", "MYR") == Decimal("1000.50")
        assert parse_typed_amount("12,500", None) == Decimal("12500")
    for typed in ("1.000,50", "1,00", "٢٥", "1e3", "-5", "", "1,000.505"):
        with pytest.raises(ApplicationError) as refused:
            parse_typed_amount(typed, "MYR")
        assert refused.value.errors["amount"], typed
