"""Malaysian shipping addresses and phone numbers: 5-digit postcodes, the 13 states and 3 federal territories (as
the post writes them, whatever alias was typed), and +60 numbers in E.164."""

from __future__ import annotations

import pytest

from core.phone import E164_RE
from orders.addresses import MY_STATES, STATE_CHOICES, address_errors, address_normalize

KL = {"name": "Siti Aminah", "line1": "Jalan Ampang 12", "city": "Kuala Lumpur", "postal_code": "50450",
      "country": "MY", "state": "Wilayah Persekutuan Kuala Lumpur"}  # fmt: skip


def test_the_thirteen_states_and_three_federal_territories_are_the_choice():
    assert len(MY_STATES) == 16 and STATE_CHOICES["MY"] == list(MY_STATES)
    assert sum(name.startswith("Wilayah Persekutuan") for name in MY_STATES) == 3
    assert address_errors(KL) == {}


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Penang", "Pulau Pinang"),
        ("malacca", "Melaka"),
        ("MY-10", "Selangor"),
        ("Kuala  Lumpur", KL["state"]),
        ("W.P. Labuan", "Wilayah Persekutuan Labuan"),
        ("Johor", "Johor"),
    ],
)
def test_states_are_stored_as_the_post_writes_them(typed, stored):
    address = KL | {"state": typed}
    assert address_errors(address) == {}
    assert address_normalize(address)["state"] == stored


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"postal_code": "5045"}, "postal_code"),
        ({"postal_code": "50450-1"}, "postal_code"),
        ({"postal_code": ""}, "postal_code"),
        ({"state": ""}, "state"),
        ({"state": "Singapore"}, "state"),
    ],
)
def test_a_wrong_postcode_or_state_is_refused_with_a_message_on_its_field(change, field):
    errors = address_errors(KL | change)
    assert list(errors) == [field] and errors[field][0]


def test_malaysian_mobile_and_landline_numbers_in_e164():
    for number in ("+60123456789", "+601123456789", "+60312345678"):
        assert E164_RE.match(number)
    for number in ("0123456789", "60123456789", "+60 12-345 6789"):
        assert not E164_RE.match(number)
