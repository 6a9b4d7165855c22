"""Code inventory (public schema): operators upload pre-bought codes; orders draw them one per reward.

Codes are encrypted on import and never leave this module in clear except to the supplier adapter
(fulfillment.suppliers.inventory), which hands them to the reward. Errors and logs show the last 4 only.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from core import crypto
from core.errors import ApplicationError
from core.money import exponent, format_amount, quantize

from .models import (
    DenominationType,
    InventoryCode,
    InventoryCodeStatus,
    Product,
    ProductType,
    Supplier,
    SupplierKind,
)

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("code", "pin", "denomination")
REQUIRED_COLUMNS = ("code", "denomination")
MAX_ROWS = 100_000  # one file; ~2 s to validate and encrypt, ~25 MB of rows in memory
INSERT_BATCH = 1000  # ~30 ms per INSERT on a laptop
HASH_LOOKUP_BATCH = 5000  # codes per `code_hash IN (…)` query against what is stored
DEFAULT_LOW_STOCK_THRESHOLD = 10
_SEPARATORS = re.compile(r"[\s\-]+")


@dataclass(frozen=True)
class ImportRowError:
    row: int  # the spreadsheet's row number (the header is row 1)
    column: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class ImportResult:
    supplier_code: str
    product_id: str
    batch_label: str
    imported: int
    by_denomination: dict[str, int] = field(default_factory=dict)  # "25.00" -> count


@dataclass(frozen=True)
class StockLine:
    product_id: str
    product_name: str
    supplier_code: str
    denomination: Decimal
    currency: str
    available: int
    issued: int
    void: int


def normalise_code(code: str) -> str:
    """What makes two codes the same: case, spaces and dashes do not count."""
    return _SEPARATORS.sub("", code or "").upper()


def code_hash(code: str) -> str:
    """Keyed hash of the normalised code: a leaked table does not let anyone brute-force short codes."""
    key = (settings.INVENTORY_CODE_HASH_KEY or settings.SECRET_KEY).encode()
    return hmac.new(key, normalise_code(code).encode(), hashlib.sha256).hexdigest()


def _last4(code: str) -> str:
    return normalise_code(code)[-4:]


def _denomination_error(product: Product, raw: str) -> tuple[Decimal | None, str | None]:
    try:
        value = Decimal((raw or "").strip())
        if not value.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        return None, f"{raw!r} is not a decimal amount."
    currency = product.currency
    if value <= 0:
        return None, f"{raw} must be positive."
    if value != quantize(value, currency):
        return None, f"{raw}: {currency} amounts have at most {exponent(currency)} decimal places."
    if product.denomination_type == DenominationType.FIXED:
        if value not in set(product.denomination_values):
            return None, f"{raw} is not a denomination of this product ({product.allowed_amounts_text()})."
    else:
        low, high = product.denomination_range
        if not (low <= value <= high):
            return None, f"{raw} is outside this product's range ({product.allowed_amounts_text()})."
    return quantize(value, currency), None


def _check_target(*, supplier: Supplier, product: Product) -> None:
    if supplier.kind != SupplierKind.INVENTORY:
        raise ApplicationError(
            f"Supplier {supplier.code} is a {supplier.kind} supplier; codes can only be loaded into an "
            "inventory supplier.",
            code="supplier_not_inventory",
            errors={"supplier": ["Not an inventory supplier."]},
        )
    if product.supplier_id != supplier.pk:
        raise ApplicationError(
            f"Product {product.pk} is supplied by another supplier; its orders would never draw these codes. "
            f"Set its supplier to {supplier.code} first.",
            code="supplier_mismatch",
            errors={"product": ["Supplied by another supplier."]},
        )
    if product.type not in (ProductType.DIGITAL, ProductType.EXPERIENCE, ProductType.DISCOUNT):
        raise ApplicationError(
            f"A {product.type} product is not fulfilled with codes.",
            code="validation_error",
            errors={"product": ["Only digital, experience and discount products take codes."]},
        )


def _read_rows(path: str | Path) -> list[tuple[int, dict[str, str]]]:
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ApplicationError(
            f"Cannot read {path}: {exc.strerror}.", code="validation_error", errors={"path": [str(exc.strerror)]}
        ) from None
    with handle:
        reader = csv.DictReader(handle)
        header = [(name or "").strip().lower() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        unknown = [name for name in header if name not in CSV_COLUMNS]
        if missing or unknown:
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise ApplicationError(
                f"The header must be {','.join(CSV_COLUMNS)} (pin optional): {'; '.join(parts)}.",
                code="validation_error",
                errors={"header": [f"Missing {name}." for name in missing] + [f"Unknown {name}." for name in unknown]},
            )
        reader.fieldnames = header
        rows = []
        for number, row in enumerate(reader, start=2):
            if number - 1 > MAX_ROWS:
                raise ApplicationError(
                    f"At most {MAX_ROWS} codes per file; split it.",
                    code="validation_error",
                    errors={"path": ["Too many rows."]},
                )
            rows.append((number, {key: (value or "") for key, value in row.items() if key is not None}))
    return rows


def inventory_import_csv(
    *, supplier: Supplier, product: Product, path: str | Path, batch_label: str = ""
) -> ImportResult:
    """Load `code,pin,denomination` rows as available codes: all of them, or none if any row is bad.

    Every bad row is reported (row number, column, message); a code is named by its last 4 characters only.
    """
    _check_target(supplier=supplier, product=product)
    batch_label = (batch_label or "").strip()[:100]
    rows = _read_rows(path)
    problems: list[ImportRowError] = []
    parsed: list[tuple[int, str, str, Decimal, str]] = []  # row, code, pin, denomination, hash
    seen: dict[str, int] = {}
    for number, row in rows:
        code = (row.get("code") or "").strip()
        pin = (row.get("pin") or "").strip()
        row_problems = []
        if not normalise_code(code):
            row_problems.append(ImportRowError(number, "code", "The code is blank."))
        elif len(code) > 200 or not code.isprintable():
            row_problems.append(ImportRowError(number, "code", f"Code …{_last4(code)} is not a plausible code."))
        if len(pin) > 50:
            row_problems.append(ImportRowError(number, "pin", "The PIN is longer than 50 characters."))
        denomination, message = _denomination_error(product, row.get("denomination", ""))
        if message:
            row_problems.append(ImportRowError(number, "denomination", message))
        digest = code_hash(code) if normalise_code(code) else ""
        if digest:
            if digest in seen:
                row_problems.append(
                    ImportRowError(number, "code", f"Code …{_last4(code)} duplicates row {seen[digest]} of this file.")
                )
            else:
                seen[digest] = number
        if row_problems or denomination is None:  # no denomination: its problem is listed
            problems.extend(row_problems)
        else:
            parsed.append((number, code, pin, denomination, digest))
    hashes = [item[4] for item in parsed]
    stored: set[str] = set()
    for start in range(0, len(hashes), HASH_LOOKUP_BATCH):
        chunk = hashes[start : start + HASH_LOOKUP_BATCH]
        stored.update(
            InventoryCode.objects.filter(supplier=supplier, code_hash__in=chunk).values_list("code_hash", flat=True)
        )
    for number, code, _pin, _denomination, digest in parsed:
        if digest in stored:
            problems.append(
                ImportRowError(number, "code", f"Code …{_last4(code)} is already stored for {supplier.code}.")
            )
    if problems:
        problems.sort(key=lambda problem: problem.row)
        raise ApplicationError(
            f"{len({p.row for p in problems})} bad row(s); nothing was imported.\n"
            + "\n".join(f"row {p.row}, {p.column}: {p.message}" for p in problems),
            code="validation_error",
            errors={"rows": [problem.as_dict() for problem in problems]},
        )
    if not parsed:
        raise ApplicationError("The file has no codes.", code="validation_error", errors={"path": ["No rows."]})
    now = timezone.now()
    codes = [
        InventoryCode(
            supplier=supplier,
            product=product,
            denomination=denomination,
            currency=product.currency,
            code_encrypted=crypto.encrypt(code),
            pin_encrypted=crypto.encrypt(pin) if pin else "",
            code_hash=digest,
            code_last4=_last4(code),
            uploaded_at=now,
            batch_label=batch_label,
        )
        for _number, code, pin, denomination, digest in parsed
    ]
    try:
        with transaction.atomic():
            InventoryCode.objects.bulk_create(codes, batch_size=INSERT_BATCH)
    except IntegrityError:
        # Another import stored one of these codes between our check and our insert.
        raise ApplicationError(
            "A code in this file was stored by a concurrent import; nothing was imported. Run the import again "
            "to see which rows.",
            code="validation_error",
            errors={"path": ["Duplicate of a concurrently imported code."]},
        ) from None
    by_denomination: dict[str, int] = {}
    for imported in codes:
        key = format_amount(imported.denomination, imported.currency)
        by_denomination[key] = by_denomination.get(key, 0) + 1
    logger.info(
        "inventory codes imported",
        extra={
            "event": "inventory.imported",
            "supplier": supplier.code,
            "product_id": str(product.pk),
            "batch": batch_label,
            "count": len(codes),
        },
    )
    return ImportResult(
        supplier_code=supplier.code,
        product_id=str(product.pk),
        batch_label=batch_label,
        imported=len(codes),
        by_denomination=by_denomination,
    )


def inventory_stock(*, product: Product | None = None) -> list[StockLine]:
    """Codes per product and denomination: available, issued and void counts."""
    rows = InventoryCode.objects.all()
    if product is not None:
        rows = rows.filter(product=product)
    grouped = (
        rows.values("product_id", "product__name", "supplier__code", "denomination", "currency")
        .annotate(
            available=Count("id", filter=Q(status=InventoryCodeStatus.AVAILABLE)),
            issued=Count("id", filter=Q(status=InventoryCodeStatus.ISSUED)),
            void=Count("id", filter=Q(status=InventoryCodeStatus.VOID)),
        )
        .order_by("product__name", "product_id", "denomination")
    )
    return [
        StockLine(
            product_id=str(row["product_id"]),
            product_name=row["product__name"],
            supplier_code=row["supplier__code"],
            denomination=quantize(row["denomination"], row["currency"]),
            currency=row["currency"],
            available=row["available"],
            issued=row["issued"],
            void=row["void"],
        )
        for row in grouped
    ]


def drawn_from_pool(product: Product) -> bool:
    """Whether orders of `product` draw codes from a pool here: an inventory supplier's product, in a live schema
    (a sandbox twin gets the sandbox supplier's fakes, fulfillment.suppliers.inventory). Needs `supplier` loaded."""
    from django.db import connection

    if getattr(getattr(connection, "tenant", None), "is_sandbox", False):
        return False
    return product.supplier.kind == SupplierKind.INVENTORY


class PoolStock:
    """What an order or a bulk file asks of code pools, checked as it is planned: each (product, denomination)
    counted once (one query), then every further code asked for is set against that count. A check, not a
    reservation: a code is drawn when the reward is fulfilled, and a pool emptied in between fails that reward
    and releases its funds (fulfillment.suppliers.inventory)."""

    def __init__(self) -> None:
        self._left: dict[tuple[Any, Decimal], int] = {}
        self._pooled: dict[Any, bool] = {}  # per product: drawn_from_pool, asked once per plan (a bulk file: 100k rows)

    def take(self, *, product: Product, denomination: Decimal, count: int = 1) -> str:
        """Set `count` codes aside in this plan; '' when the pool has them, else why not (nothing is taken)."""
        pooled = self._pooled.get(product.pk)
        if pooled is None:
            pooled = self._pooled[product.pk] = drawn_from_pool(product)
        if not pooled:
            return ""
        key = (product.pk, denomination)
        if key not in self._left:
            self._left[key] = InventoryCode.objects.filter(
                supplier_id=product.supplier_id, product=product, denomination=denomination,
                currency=product.currency, status=InventoryCodeStatus.AVAILABLE,
            ).count()  # fmt: skip
        left = self._left[key]
        if left < count:
            amount = f"{format_amount(denomination, product.currency)} {product.currency}"
            if left == 0:
                return f"Out of stock: no {amount} codes are left for {product.name}."
            return f"Out of stock: only {left} {amount} codes are left for {product.name}."
        self._left[key] = left - count
        return ""


def inventory_available_count(*, product: Product, denomination: Decimal) -> int:
    return InventoryCode.objects.filter(
        product=product, denomination=denomination, status=InventoryCodeStatus.AVAILABLE
    ).count()


def _alert_once_today(product: Product, denomination: Decimal, today: date) -> bool:
    """True for the first caller per product/denomination/day (a Redis key, SET NX); False if Redis is down."""
    import redis

    from core.redis import get_redis

    key = f"rp:inventory-low-stock:{product.pk}:{denomination.normalize()}:{today.isoformat()}"
    try:
        return bool(get_redis().set(key, "1", nx=True, ex=2 * 86400))
    except redis.RedisError:
        logger.warning("low-stock alert skipped: Redis unavailable", extra={"event": "inventory.low_stock_unknown"})
        return False


def inventory_low_stock_check(*, supplier: Supplier, product: Product, denomination: Decimal) -> bool:
    """After a draw: below the threshold, warn once and email the operators, at most once per day.

    Works from any schema: the operators are read from the public schema. Returns whether it alerted.
    A failure to send is logged, never raised (the draw it follows has already succeeded).
    """
    threshold = int((supplier.config or {}).get("low_stock_threshold", DEFAULT_LOW_STOCK_THRESHOLD))
    available = inventory_available_count(product=product, denomination=denomination)
    if available >= threshold:
        return False
    if not _alert_once_today(product, denomination, timezone.localdate()):
        return False
    amount = f"{format_amount(denomination, product.currency)} {product.currency}"
    logger.warning(
        "inventory low on codes",
        extra={
            "event": "inventory.low_stock",
            "supplier": supplier.code,
            "product_id": str(product.pk),
            "denomination": amount,
            "available": available,
            "threshold": threshold,
        },
    )
    from django.utils.translation import gettext

    from accounts.models import User
    from accounts.services import staff_email_languages
    from core.i18n import language

    with schema_context(get_public_schema_name()):
        recipients = list(
            User.objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
        )
        groups = staff_email_languages(recipients, default="")  # each operator's console language
    if not recipients:
        logger.warning("no operator to tell about low stock", extra={"event": "inventory.low_stock_unsent"})
        return True
    values = {"product": product.name, "id": product.pk, "amount": amount, "available": available,
              "threshold": threshold, "supplier": supplier.code}  # fmt: skip
    for code, emails in groups.items():
        with language(code):
            subject = gettext("Low stock: %(product)s %(amount)s (%(available)s left)") % values
            body = (
                gettext(
                    "The code inventory of supplier %(supplier)s has %(available)s available code(s) for\n"
                    "%(product)s (%(id)s) at %(amount)s; the alert threshold is %(threshold)s."
                )
                % values
                + "\n\n"
                + gettext("Upload more with:")
                + f" manage.py inventory_import {supplier.code} {product.pk} codes.csv --batch LABEL\n"
            )
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, emails, fail_silently=False)
        except Exception:
            logger.exception("low-stock email failed", extra={"event": "inventory.low_stock_email_failed"})
    return True
    subject = f"Low stock: {product.name} {amount} ({available} left)"
    body = (
        f"The code inventory of supplier {supplier.code} has {available} available code(s) for\n"
        f"{product.name} ({product.pk}) at {amount}; the alert threshold is {threshold}.\n\n"
        "Upload more with: manage.py inventory_import "
        f"{supplier.code} {product.pk} codes.csv --batch LABEL\n"
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception:
        logger.exception("low-stock email failed", extra={"event": "inventory.low_stock_email_failed"})
    return True


__all__ = [
    "ImportResult",
    "ImportRowError",
    "StockLine",
    "code_hash",
    "inventory_available_count",
    "inventory_import_csv",
    "inventory_low_stock_check",
    "inventory_stock",
    "normalise_code",
]
