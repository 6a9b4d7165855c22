"""The bulk CSV format: columns, the template, streaming decoding and the per-row validation.

Rows are read one at a time (csv over lines decoded as they arrive), never the whole file at once. Catalogue,
FX, funding-currency and shipping lookups are cached per upload, so a file of 100,000 rows for three products
costs a handful of queries, not one per row.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils import timezone

from core.errors import ApplicationError
from core.i18n import locale_normalize, supported_locales
from core.money import amount_text_ok, quantize
from core.phone import E164_RE
from core.text import control_character_error
from core.zones import zone_get

if TYPE_CHECKING:
    from _hashlib import HASH

    from catalog.models import Product, ShippingMethod
    from programs.models import Program

COLUMNS = [
    "recipient_name",
    "recipient_email",
    "recipient_phone",
    "sku",
    "product_id",
    "amount",
    "currency",
    "delivery_method",
    "message",
    "sender_name",
    "deliver_at",
    "external_id",
    "locale",
    "claim_by",
]
SHIPPING_COLUMNS = [
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
    "shipping_method_id",
]
# Instead of recipient_name/email/phone: a person of the tenant's directory (their fields are copied at upload).
PERSON_COLUMNS = ["person_id", "person_external_id"]
ALL_COLUMNS = COLUMNS + SHIPPING_COLUMNS + PERSON_COLUMNS
# `metadata.<key>` columns fill the reward's metadata (orders.metadata's limits). `error` is the column the
# error file adds: a fixed error file uploads as it is, its `error` cells ignored.
METADATA_PREFIX = "metadata."
IGNORED_COLUMNS = {"error"}
# recipient_name, or a person column instead; and the product: a `sku` or a `product_id` column.
REQUIRED_COLUMNS = ["recipient_name", "amount"]
# Cells a spreadsheet would evaluate as a formula (OWASP CSV injection). A phone may start with `+` (E.164);
# amount and deliver_at are parsed strictly, so they are never stored or exported as typed.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PHONE_FORMULA_PREFIXES = ("=", "-", "@", "\t", "\r")
NOT_TEXT = {"amount", "deliver_at", "claim_by", "recipient_phone"}
TEXT_LIMITS = {"recipient_name": 200, "recipient_email": 254, "sender_name": 200, "external_id": 100}
ADDRESS_COLUMNS = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
    "country": "country",
    "name": "recipient_name",
}
DIGITAL_METHODS = {"email", "sms", "api", "link"}
BOM = b"\xef\xbb\xbf"

# The downloadable template (GET /batches/template.csv): every column, a digital and a physical gift.
TEMPLATE_ROWS = [
    ["Ada Lovelace", "ada@example.com", "", "lumen-coffee-us-usd", "", "25.00", "USD", "link",
     "Thanks for shipping the release!", "The Platform Team", "", "hr-2026-001", "ms", "2027-06-30", "", "", "", "",
     "", "", "", "", ""],
    ["Grace Hopper", "grace@example.com", "+14155550123", "harvest-hampers-us-usd", "", "50.00", "USD",
     "shipment", "Welcome aboard", "", "2027-03-01T09:00:00Z", "hr-2026-002", "en", "", "1 Navy Way", "",
     "Arlington", "VA", "22202", "US", "0f5d3c0e-4b1d-4c59-8d2a-7d8c6e5f4a31", "", ""],
]  # fmt: skip


def file_error(
    detail: str, *, code: str = "invalid_file", status: int = 422, line: int | None = None
) -> ApplicationError:
    errors: dict[str, Any] = {"file": [detail]}
    if line is not None:
        errors["line"] = [str(line)]
    return ApplicationError(detail, code=code, status=status, errors=errors, title="Invalid CSV file")


@dataclass
class FileDigest:
    sha256: HASH = field(default_factory=hashlib.sha256)
    bytes: int = 0


def decoded_lines(raw_lines: Iterable[bytes], digest: FileDigest) -> Iterator[str]:
    """UTF-8 lines (a leading BOM dropped), hashing and measuring the bytes as they pass; refuses a line that
    is not UTF-8 or is longer than BATCH_MAX_ROW_BYTES, naming the line."""
    max_line = settings.BATCH_MAX_ROW_BYTES
    max_bytes = settings.BATCH_MAX_FILE_BYTES
    for number, raw in enumerate(raw_lines, start=1):
        digest.sha256.update(raw)
        digest.bytes += len(raw)
        if digest.bytes > max_bytes:
            raise file_error(f"The file is larger than {max_bytes} bytes.", code="file_too_large", status=413)
        if len(raw) > max_line:
            raise file_error(
                f"Line {number} is {len(raw)} bytes long; a row may be at most {max_line} bytes.",
                code="row_too_large",
                line=number,
            )
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise file_error(
                f"Line {number} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the "
                'line). Save the file as "CSV UTF-8" and upload it again.',
                code="invalid_encoding",
                line=number,
            ) from None


def header_indexes(
    header: list[str],
    *,
    columns: list[str] = ALL_COLUMNS,
    required: list[str] = REQUIRED_COLUMNS,
    prefixes: tuple[str, ...] = (METADATA_PREFIX,),
    template: str = "/api/v1/batches/template.csv",
) -> dict[str, int]:
    """Column name → index; refuses missing required, unknown or repeated columns. A column starting with one
    of `prefixes` is allowed whatever follows (the bulk file's `metadata.<key>`, the people import's
    `attributes.<name>`); an `error` column (what an error file adds) is ignored."""
    names = [name.strip() if name.strip().startswith(prefixes) and prefixes else name.strip().lower()
             for name in header]  # fmt: skip
    unknown = [
        name
        for name in names
        if name and name not in columns and name not in IGNORED_COLUMNS and not (prefixes and name.startswith(prefixes))
    ]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if columns is ALL_COLUMNS and any(name in names for name in PERSON_COLUMNS):
        required = [name for name in required if name != "recipient_name"]
    missing = [name for name in required if name not in names]
    if columns is ALL_COLUMNS and "sku" not in names and "product_id" not in names:
        missing.append("sku (or product_id)")
    if missing:
        raise file_error(
            f"The header is missing required column(s): {', '.join(missing)}. Start from the template "
            f"(GET {template}).",
            code="missing_columns",
            line=1,
        )
    if unknown:
        raise file_error(
            f"Unknown column(s): {', '.join(unknown[:10])}. Allowed: {', '.join(columns)}"
            + (f", and {', '.join(p + '<name>' for p in prefixes)}." if prefixes else "."),
            code="unknown_columns",
            line=1,
        )
    if repeated:
        raise file_error(f"Repeated column(s): {', '.join(repeated)}.", code="invalid_file", line=1)
    return {name: index for index, name in enumerate(names) if name and name not in IGNORED_COLUMNS}


@dataclass
class ValidRow:
    row_number: int
    external_id: str
    currency: str  # funding currency
    charge: Decimal  # face value converted + FX fee + shipping, in the funding currency
    data: dict[str, Any]


class RowValidator:
    """Validates one row at a time against the catalogue as this tenant (and program) sees it, with caches."""

    def __init__(self, *, program: Program | None = None) -> None:
        from funds.selectors import balance_list

        self.program = program
        self.now = timezone.now()
        self.max_cell = settings.BATCH_MAX_CELL_CHARS
        self.funded = {balance.currency for balance in balance_list()}
        from tenants.selectors import tenant_current

        tenant = tenant_current()
        self.default_currency = tenant.live_tenant.default_currency
        self.zone = zone_get(tenant.timezone)  # a claim_by without an offset is the company's wall-clock time
        # Each cache holds the value, or why there is none (a str).
        self._products: dict[tuple[str, str | None], Product | str] = {}
        self._amounts: dict[tuple[uuid.UUID, str], Decimal | str] = {}
        self._fx: dict[tuple[str, str], Decimal | str] = {}
        self._charges: dict[tuple[Decimal, str, str], tuple[Decimal, Decimal]] = {}
        self._shipping: dict[tuple[str, str], ShippingMethod | str] = {}
        from catalog.inventory import PoolStock

        self.pools = PoolStock()  # codes the file asks of code pools, row after row
        self._dates: dict[str, datetime | str] = {}
        self._emails: dict[str, bool] = {}
        self._email_validator = EmailValidator()
        # The validator's user-part pattern is a lazy object: each attribute read goes through its proxy.
        self._email_user_match = self._email_validator.user_regex.match
        self.external_ids: set[str] = set()
        # The tenant's people by id and by external_id, loaded on the first row that names one (~0.3 s per 100k
        # people, one query) rather than one query per row.
        self._people: dict[str, tuple[str, str, str, str, str, str]] | None = None

    # --- cached lookups --------------------------------------------------------------------------------
    def product(self, product_id: str, country: str | None) -> Product | str:
        key = (product_id, country)
        if key not in self._products:
            from catalog.selectors import product_get_orderable

            try:
                self._products[key] = product_get_orderable(
                    product_id=product_id, program=self.program, country=country
                )
            except ApplicationError as exc:
                self._products[key] = exc.detail
        return self._products[key]

    def amount(self, product: Product, text: str) -> Decimal | str:
        key = (product.id, text)
        if key not in self._amounts:
            from catalog.selectors import product_validate_amount

            try:
                if not amount_text_ok(text):
                    raise ValueError(text)
                value = Decimal(text)
                product_validate_amount(product=product, amount=value)
                self._amounts[key] = quantize(value, product.currency)
            except (InvalidOperation, ValueError):
                self._amounts[key] = f"{text[:40]!r} is not an amount: write it with digits and a point, e.g. 25.00."
            except ApplicationError as exc:
                self._amounts[key] = exc.detail
        return self._amounts[key]

    def funding_currency(self, face_currency: str) -> str:
        return face_currency if face_currency in self.funded else self.default_currency

    def fx_rate(self, base: str, quote: str) -> Decimal | str:
        key = (base, quote)
        if key not in self._fx:
            from catalog.selectors import fx_rate_get

            fx = fx_rate_get(base=base, quote=quote)
            self._fx[key] = fx.rate if fx is not None else f"No FX rate from {base} to {quote}."
        return self._fx[key]

    def charge(self, amount: Decimal, base: str, quote: str) -> tuple[Decimal, Decimal] | str:
        """(converted amount, FX fee) in `quote`, or why it cannot be converted."""
        if base == quote:
            return amount, Decimal(0)
        key = (amount, base, quote)
        if key not in self._charges:
            rate = self.fx_rate(base, quote)
            if isinstance(rate, str):
                return rate
            from orders.planning import convert_at_rate

            self._charges[key] = convert_at_rate(amount=amount, rate=rate, to_currency=quote)
        return self._charges[key]

    def shipping_method(self, method_id: str, country: str) -> ShippingMethod | str:
        key = (method_id, country)
        if key not in self._shipping:
            from catalog.selectors import shipping_method_get

            try:
                self._shipping[key] = shipping_method_get(shipping_method_id=method_id, country=country)
            except ApplicationError as exc:
                self._shipping[key] = exc.detail
        return self._shipping[key]

    def deliver_at(self, text: str) -> datetime | str:
        if text not in self._dates:
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                value = None
            if value is None:
                self._dates[text] = "Use an ISO 8601 date-time with a time zone, e.g. 2026-12-01T09:00:00Z."
            elif value.tzinfo is None:
                self._dates[text] = "Add a time zone, e.g. 2026-12-01T09:00:00Z or 2026-12-01T09:00:00+02:00."
            elif value <= self.now:
                self._dates[text] = "deliver_at must be in the future."
            else:
                self._dates[text] = value
        return self._dates[text]

    def claim_by(self, text: str, deliver_at: datetime | None) -> datetime | str:
        """A claim link's deadline: an ISO date (the end of that day) or date-time, in the company's time zone when
        it names no offset; in the future, after deliver_at, and at most CLAIM_DAYS_MAX days away (as the API)."""
        from programs.models import CLAIM_DAYS_MAX

        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return "Use an ISO 8601 date or date-time, e.g. 2027-01-31 or 2027-01-31T18:00+08:00."
        if len(text) == 10:  # a date alone: the recipient has all of that day
            value = datetime.combine(date.fromisoformat(text), time(23, 59, 59))
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        if value <= max(self.now, deliver_at or self.now):
            return "claim_by must be in the future and after deliver_at."
        if value > self.now + timedelta(days=CLAIM_DAYS_MAX):
            return "claim_by may be at most ten years away."
        return value

    def email_ok(self, email: str) -> bool:
        """Django's EmailValidator, its domain check cached per domain (a file has few domains)."""
        user, _, domain = email.rpartition("@")
        if not user or len(email) > 320 or not self._email_user_match(user):
            return False
        if domain not in self._emails:
            try:
                self._email_validator(f"x@{domain}")
                self._emails[domain] = True
            except ValidationError:
                self._emails[domain] = False
        return self._emails[domain]

    def person(self, person_id: str, external_id: str) -> tuple[str, str, str, str, str, str] | str:
        """(id, name, email, phone, status, locale) of the person a row names, or why not."""
        if self._people is None:
            from people.models import Person

            self._people = {}
            for values in Person.objects.values_list("id", "external_id", "name", "email", "phone", "status", "locale"):
                person = (str(values[0]), *values[2:])
                self._people[f"id:{values[0]}"] = person
                self._people[f"ext:{values[1]}"] = person
        if person_id and external_id:
            return "Give person_id or person_external_id, not both."
        found = self._people.get(f"id:{person_id.lower()}" if person_id else f"ext:{external_id}")
        if found is None:
            return "No such person."
        if found[4] == "left":
            return "This person has left; mark them active to send them a reward."
        return found

    # --- one row -----------------------------------------------------------------------------------------
    def validate(self, cells: dict[str, str], row_number: int) -> tuple[ValidRow | None, list[tuple[str, str]]]:
        """The normalised row, or its errors as (column, message) pairs (every problem found, not only the first)."""
        errors: list[tuple[str, str]] = []
        max_cell = self.max_cell
        for column, value in cells.items():
            if not value:
                continue
            if len(value) > max_cell:
                errors.append((column, f"At most {max_cell} characters ({len(value)} given)."))
            elif column not in NOT_TEXT and value.startswith(FORMULA_PREFIXES):
                errors.append((column, "Cells may not begin with a formula character (= + - @) or a tab or carriage "
                                       "return: spreadsheets would run them."))  # fmt: skip
            elif column == "recipient_phone" and value.startswith(PHONE_FORMULA_PREFIXES):
                errors.append((column, "Phone cells may not begin with a formula character (= - @) or a tab or "
                                       "carriage return: spreadsheets would run them."))  # fmt: skip
        if errors:
            return None, errors
        get = cells.get
        name = get("recipient_name", "").strip()
        email = get("recipient_email", "").strip().lower()
        phone = get("recipient_phone", "").strip()
        person_id = get("person_id", "").strip()
        person_external_id = get("person_external_id", "").strip()
        person_ref = person_locale = ""
        if person_id or person_external_id:
            column = "person_id" if person_id else "person_external_id"
            person = self.person(person_id, person_external_id)
            if name or email or phone:
                errors.append((column, "Give either recipient columns or a person, not both."))
            elif isinstance(person, str):
                errors.append((column, person))
            else:
                person_ref, name, email, phone, person_locale = person[0], person[1], person[2], person[3], person[5]
        method = get("delivery_method", "").strip().lower()
        country = get("country", "").strip().upper() or None
        external_id = get("external_id", "").strip()
        for column, limit in TEXT_LIMITS.items():
            value = get(column, "")
            if len(value) > limit:
                errors.append((column, f"At most {limit} characters."))
        if not name and not person_ref and not (person_id or person_external_id):
            errors.append(("recipient_name", "The recipient's name is required."))
        for column in ("recipient_name", "sender_name", "message"):
            if problem := control_character_error(get(column, ""), multiline=column == "message"):
                errors.append((column, problem))
        if email and not self.email_ok(email):
            errors.append(("recipient_email", "Not a valid email address."))
        if phone and not E164_RE.match(phone):
            errors.append(("recipient_phone", "Use E.164 format, e.g. +14155550123."))
        metadata = {
            column[len(METADATA_PREFIX) :]: value.strip()
            for column, value in cells.items()
            if column.startswith(METADATA_PREFIX) and value.strip()
        }
        if metadata:
            from orders.metadata import metadata_problems

            errors.extend(("metadata", problem) for problem in metadata_problems(metadata))
        if external_id:
            if external_id in self.external_ids:
                errors.append(("external_id", "Used by an earlier row of this file."))
            self.external_ids.add(external_id)

        product_column = "sku" if get("sku", "").strip() or not get("product_id", "").strip() else "product_id"
        product_id = get("sku", "").strip().lower() or get("product_id", "").strip()
        product = self.product(product_id, country) if product_id else "The product's sku (or product_id) is required."
        if isinstance(product, str):
            errors.append((product_column, product))
            return None, errors
        physical = product.type == "physical"
        method = method or ("shipment" if physical else "email")
        if physical and method != "shipment":
            errors.append(("delivery_method", f"{product.name} is a physical product: use shipment."))
        elif not physical and method not in DIGITAL_METHODS:
            errors.append(("delivery_method", f"Use one of {', '.join(sorted(DIGITAL_METHODS))} for this product."))
        if method == "email" and not email:
            errors.append(("recipient_email", "Email delivery needs the recipient's email."))
        if method == "sms" and not phone:
            errors.append(("recipient_phone", "SMS delivery needs the recipient's phone (E.164)."))
        currency = get("currency", "").strip().upper()
        if currency and currency != product.currency:
            errors.append(("currency", f"{product.name} is denominated in {product.currency}."))
        amount_text = get("amount", "").strip()
        amount = self.amount(product, amount_text) if amount_text else "The amount is required."
        if isinstance(amount, str):
            errors.append(("amount", amount))
        deliver_at = None
        deliver_text = get("deliver_at", "").strip()
        if deliver_text:
            deliver_at = self.deliver_at(deliver_text)
            if isinstance(deliver_at, str):
                errors.append(("deliver_at", deliver_at))
        claim_by = None
        if claim_text := get("claim_by", "").strip():
            claim_by = self.claim_by(claim_text, deliver_at if isinstance(deliver_at, datetime) else None)
            if isinstance(claim_by, str):
                errors.append(("claim_by", claim_by))
        locale = locale_normalize(get("locale", "") or person_locale)  # the row's, else the person's (as the API)
        if get("locale", "").strip() and not locale:
            errors.append(("locale", f"Use one of the platform's languages: {', '.join(supported_locales())}."))

        address = None
        shipping_method = None
        if physical:
            from orders.addresses import address_errors, address_normalize

            raw = {key: get(column, "") for key, column in ADDRESS_COLUMNS.items()}
            for key, messages in address_errors(raw).items():
                errors.append((ADDRESS_COLUMNS.get(key, key), " ".join(messages)))
            method_id = get("shipping_method_id", "").strip()
            if not method_id:
                errors.append(("shipping_method_id", "Physical rewards need a shipping method."))
            elif not errors:
                address = address_normalize(raw)
                shipping_method = self.shipping_method(method_id, address["country"])
                if isinstance(shipping_method, str):
                    errors.append(("shipping_method_id", shipping_method))
        # A refusal (a str) is always in `errors` too; the isinstance tests only tell the type checker so.
        if errors or isinstance(amount, str) or isinstance(deliver_at, str) or isinstance(claim_by, str):
            return None, errors
        if isinstance(shipping_method, str):
            return None, errors

        funding = self.funding_currency(product.currency)
        # A zero-cost (merchant-funded) discount costs nothing in any currency: no FX rate needed, nothing held.
        converted = (Decimal(0), Decimal(0)) if product.zero_cost else self.charge(amount, product.currency, funding)
        if isinstance(converted, str):
            return None, [("amount", converted)]
        charge, fee = converted
        if not product.zero_cost and charge + fee <= 0:
            return None, [("amount", f"{amount} {product.currency} is worth less than the smallest {funding} amount.")]
        shipping = Decimal(0)
        if shipping_method is not None:
            shipped = self.charge(shipping_method.price, shipping_method.currency, funding)
            if isinstance(shipped, str):
                return None, [("shipping_method_id", shipped)]
            shipping, shipping_fee = shipped
            fee += shipping_fee
        order_type = "physical" if physical else ("link" if method == "link" else "digital")
        data: dict[str, Any] = {
            "order_type": order_type,
            "recipient_name": name,
            "product_id": str(product.id),
            "amount": str(amount),
            "face_currency": product.currency,
            "delivery_method": method,
            "charge": str(charge),
            "fx_fee": str(fee),
        }
        if person_ref:
            data["person_id"] = person_ref
        if email:
            data["recipient_email"] = email
        if phone:
            data["recipient_phone"] = phone
        if message := get("message", "").strip():
            data["message"] = message
        if sender := get("sender_name", "").strip():
            data["sender_name"] = sender
        if deliver_at is not None:
            data["deliver_at"] = deliver_at.isoformat()
        if claim_by is not None:
            data["claim_by"] = claim_by.isoformat()
        if locale:
            data["locale"] = locale
        if funding != product.currency and not product.zero_cost:
            data["fx_rate"] = str(self.fx_rate(product.currency, funding))
        if country:
            data["country"] = country
        if metadata:
            data["metadata"] = metadata
        if shipping_method is not None:
            data["shipping_method_id"] = str(shipping_method.id)
            data["shipping"] = str(shipping)
            data["address"] = address
        if shortage := self.pools.take(product=product, denomination=amount):  # last: a refused row takes no code
            return None, [("amount", shortage)]
        total = charge + fee + shipping
        return ValidRow(row_number=row_number, external_id=external_id, currency=funding, charge=total, data=data), []
