"""Shipping address validation per country: required fields and postal code formats."""

from __future__ import annotations

import re

# Countries whose addresses need a state/province/region.
STATE_REQUIRED = {"US", "CA", "AU", "BR", "MX", "IN"}
POSTAL_CODE_PATTERNS: dict[str, tuple[str, str]] = {
    "US": (r"^\d{5}(-\d{4})?$", "5 digits, optionally -4 more (e.g. 94107 or 94107-1234)"),
    "CA": (r"^[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d$", "the A1A 1A1 format"),
    "GB": (r"^[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}$", "a UK postcode such as SW1A 1AA"),
    "DE": (r"^\d{5}$", "5 digits"),
    "FR": (r"^\d{5}$", "5 digits"),
    "ES": (r"^\d{5}$", "5 digits"),
    "IT": (r"^\d{5}$", "5 digits"),
    "NL": (r"^\d{4} ?[A-Za-z]{2}$", "4 digits and 2 letters (e.g. 1012 AB)"),
    "AU": (r"^\d{4}$", "4 digits"),
    "JP": (r"^\d{3}-?\d{4}$", "the 123-4567 format"),
    "IN": (r"^\d{6}$", "6 digits"),
    "BR": (r"^\d{5}-?\d{3}$", "the 12345-678 format"),
    "MX": (r"^\d{5}$", "5 digits"),
    "IE": (r"^[A-Za-z\d]{3} ?[A-Za-z\d]{4}$", "an Eircode such as D02 X285"),
}
# Countries without postal codes.
NO_POSTAL_CODE = {"HK", "AE", "IE"}
MAX_LENGTHS = {"name": 200, "line1": 200, "line2": 200, "city": 100, "state": 100, "postal_code": 20, "country": 2}


def address_errors(address: dict | None) -> dict[str, list[str]]:
    """Field -> messages; empty when the address can be shipped to."""
    if not isinstance(address, dict):
        return {"shipping_address": ["A shipping address is required for physical rewards."]}
    errors: dict[str, list[str]] = {}
    values = {key: str(address.get(key) or "").strip() for key in MAX_LENGTHS}
    for key, limit in MAX_LENGTHS.items():
        if len(values[key]) > limit:
            errors[key] = [f"At most {limit} characters."]
    for key in ("name", "line1", "city", "country"):
        if not values[key]:
            errors.setdefault(key, []).append("This field is required.")
    country = values["country"].upper()
    if country and not re.fullmatch(r"[A-Z]{2}", country):
        errors.setdefault("country", []).append("Use an ISO 3166 alpha-2 code such as US.")
    if country in STATE_REQUIRED and not values["state"]:
        errors.setdefault("state", []).append(f"A state or province is required for {country}.")
    postal = values["postal_code"]
    if country and country not in NO_POSTAL_CODE and not postal:
        errors.setdefault("postal_code", []).append("This field is required.")
    elif postal and country in POSTAL_CODE_PATTERNS:
        pattern, description = POSTAL_CODE_PATTERNS[country]
        if not re.fullmatch(pattern, postal):
            errors.setdefault("postal_code", []).append(f"Not a valid {country} postal code: use {description}.")
    return errors


def address_normalize(address: dict) -> dict:
    clean = {key: str(address.get(key) or "").strip() for key in MAX_LENGTHS}
    clean["country"] = clean["country"].upper()
    if clean["country"] in {"GB", "CA", "NL", "IE"}:
        clean["postal_code"] = clean["postal_code"].upper()
    return clean
