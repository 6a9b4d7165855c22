"""Shipping address validation per country: required fields, postal code formats, and the states of countries
whose states are a fixed list (Malaysia); messages in the active language (the claim page is the recipient's)."""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# Countries whose addresses need a state/province/region.
STATE_REQUIRED = {"US", "CA", "AU", "BR", "MX", "IN", "MY"}
POSTAL_CODE_PATTERNS: dict[str, tuple[str, Any]] = {
    "US": (r"^\d{5}(-\d{4})?$", gettext_lazy("5 digits, optionally -4 more (e.g. 94107 or 94107-1234)")),
    "CA": (r"^[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d$", gettext_lazy("the A1A 1A1 format")),
    "GB": (r"^[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}$", gettext_lazy("a UK postcode such as SW1A 1AA")),
    "DE": (r"^\d{5}$", gettext_lazy("5 digits")),
    "FR": (r"^\d{5}$", gettext_lazy("5 digits")),
    "ES": (r"^\d{5}$", gettext_lazy("5 digits")),
    "IT": (r"^\d{5}$", gettext_lazy("5 digits")),
    "NL": (r"^\d{4} ?[A-Za-z]{2}$", gettext_lazy("4 digits and 2 letters (e.g. 1012 AB)")),
    "AU": (r"^\d{4}$", gettext_lazy("4 digits")),
    "JP": (r"^\d{3}-?\d{4}$", gettext_lazy("the 123-4567 format")),
    "IN": (r"^\d{6}$", gettext_lazy("6 digits")),
    "BR": (r"^\d{5}-?\d{3}$", gettext_lazy("the 12345-678 format")),
    "MX": (r"^\d{5}$", gettext_lazy("5 digits")),
    "IE": (r"^[A-Za-z\d]{3} ?[A-Za-z\d]{4}$", gettext_lazy("an Eircode such as D02 X285")),
    "MY": (r"^\d{5}$", gettext_lazy("5 digits (e.g. 50450)")),
}
# Countries without postal codes.
NO_POSTAL_CODE = {"HK", "AE", "IE"}
MAX_LENGTHS = {"name": 200, "line1": 200, "line2": 200, "city": 100, "state": 100, "postal_code": 20, "country": 2}

# Malaysia's 13 states and 3 federal territories, as the post writes them (ISO 3166-2:MY order), with the other
# names people type for them; an address stores the first name.
MY_STATES: dict[str, tuple[str, ...]] = {
    "Johor": ("MY-01", "Johore"),
    "Kedah": ("MY-02",),
    "Kelantan": ("MY-03",),
    "Melaka": ("MY-04", "Malacca"),
    "Negeri Sembilan": ("MY-05", "N. Sembilan"),
    "Pahang": ("MY-06",),
    "Pulau Pinang": ("MY-07", "Penang", "P. Pinang"),
    "Perak": ("MY-08",),
    "Perlis": ("MY-09",),
    "Selangor": ("MY-10",),
    "Terengganu": ("MY-11", "Trengganu"),
    "Sabah": ("MY-12",),
    "Sarawak": ("MY-13",),
    "Wilayah Persekutuan Kuala Lumpur": ("MY-14", "Kuala Lumpur", "W.P. Kuala Lumpur", "WP Kuala Lumpur"),
    "Wilayah Persekutuan Labuan": ("MY-15", "Labuan", "W.P. Labuan", "WP Labuan"),
    "Wilayah Persekutuan Putrajaya": ("MY-16", "Putrajaya", "W.P. Putrajaya", "WP Putrajaya"),
}
_MY_STATE_NAMES = {
    alias.casefold(): name for name, aliases in MY_STATES.items() for alias in (name, *aliases)
}  # fmt: skip
# Countries whose `state` is one of a fixed list: the claim page offers a choice for them.
STATE_CHOICES: dict[str, list[str]] = {"MY": list(MY_STATES)}


def _state_canonical(country: str, state: str) -> str | None:
    """The stored name of `state` in a country with a fixed list; None when it is not one of them."""
    if country == "MY":
        return _MY_STATE_NAMES.get(" ".join(state.split()).casefold())
    return state


def address_errors(address: object) -> dict[str, list[str]]:
    """Field -> messages; empty when the address can be shipped to."""
    if not isinstance(address, dict):
        return {"shipping_address": [_("A shipping address is required for physical rewards.")]}
    errors: dict[str, list[str]] = {}
    values = {key: str(address.get(key) or "").strip() for key in MAX_LENGTHS}
    for key, limit in MAX_LENGTHS.items():
        if len(values[key]) > limit:
            errors[key] = [_("At most %(limit)d characters.") % {"limit": limit}]
    for key in ("name", "line1", "city", "country"):
        if not values[key]:
            errors.setdefault(key, []).append(_("This field is required."))
    country = values["country"].upper()
    if country and not re.fullmatch(r"[A-Z]{2}", country):
        errors.setdefault("country", []).append(_("Use an ISO 3166 alpha-2 code such as US."))
    if country in STATE_REQUIRED and not values["state"]:
        errors.setdefault("state", []).append(
            _("A state or province is required for %(country)s.") % {"country": country}
        )
    elif values["state"] and country in STATE_CHOICES and _state_canonical(country, values["state"]) is None:
        errors.setdefault("state", []).append(
            _("Not a state of %(country)s: use one of %(states)s.")
            % {"country": country, "states": ", ".join(STATE_CHOICES[country])}
        )
    postal = values["postal_code"]
    if country and country not in NO_POSTAL_CODE and not postal:
        errors.setdefault("postal_code", []).append(_("This field is required."))
    elif postal and country in POSTAL_CODE_PATTERNS:
        pattern, description = POSTAL_CODE_PATTERNS[country]
        if not re.fullmatch(pattern, postal):
            errors.setdefault("postal_code", []).append(
                _("Not a valid %(country)s postal code: use %(format)s.") % {"country": country, "format": description}
            )
    return errors


def address_normalize(address: dict[str, Any]) -> dict[str, str]:
    clean = {key: str(address.get(key) or "").strip() for key in MAX_LENGTHS}
    clean["country"] = clean["country"].upper()
    if clean["country"] in {"GB", "CA", "NL", "IE"}:
        clean["postal_code"] = clean["postal_code"].upper()
    if clean["country"] in STATE_CHOICES and clean["state"]:
        clean["state"] = _state_canonical(clean["country"], clean["state"]) or clean["state"]
    return clean
