"""Code-inventory supplier: hands out the operator's pre-bought codes (catalog.InventoryCode), one per reward.

The draw runs while the connection is in a tenant schema; the inventory table lives in the public schema,
which django-tenants keeps on the search_path (`<tenant>, public`), so the same queries work from any
tenant. Each draw is one short transaction with `SELECT … FOR UPDATE SKIP LOCKED`: concurrent workers
take different codes and never wait on each other; the UNIQUE `reference` makes a second code for the same
reward impossible even if two workers race for it.

Supplier config: {"low_stock_threshold": 10, "wait_for_restock": false}. With wait_for_restock an empty
shelf is retryable (the reward waits, within the task's retries, for an upload) instead of failing at once.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core import crypto
from core.money import format_amount

from .base import (
    IssuedCode,
    IssueRequest,
    IssueResults,
    SupplierError,
    SupplierRejected,
    SupplierUnavailable,
    issue_each,
    register_adapter,
)

if TYPE_CHECKING:
    from .sandbox import SandboxSupplier

logger = logging.getLogger(__name__)


def sandbox_twin_active() -> bool:
    """A sandbox (rp_test_) schema never spends real codes: its orders get the sandbox supplier's fakes."""
    return bool(getattr(getattr(connection, "tenant", None), "is_sandbox", False))


def _issued(row: Any) -> IssuedCode:
    return IssuedCode(
        code=crypto.decrypt(row.code_encrypted),
        pin=crypto.decrypt(row.pin_encrypted) if row.pin_encrypted else "",
        reference=f"inv_{row.pk}",
        extra={"batch": row.batch_label},
    )


@register_adapter("inventory")
class InventorySupplier:
    def __init__(self, supplier: Any) -> None:
        self.supplier = supplier

    def _sandbox(self) -> SandboxSupplier:
        from .sandbox import SandboxSupplier

        return SandboxSupplier(self.supplier)

    def issue(self, *, product: Any, amount: Decimal, currency: str, reference: str) -> IssuedCode:
        if sandbox_twin_active():
            return self._sandbox().issue(product=product, amount=amount, currency=currency, reference=reference)
        from catalog.inventory import inventory_low_stock_check
        from catalog.models import InventoryCode, InventoryCodeStatus

        previous = self._previous(reference)
        if previous is not None:
            return previous
        try:
            with transaction.atomic():
                row = (
                    InventoryCode.objects.select_for_update(skip_locked=True)
                    .filter(
                        supplier=self.supplier,
                        product=product,
                        denomination=amount,
                        currency=currency,
                        status=InventoryCodeStatus.AVAILABLE,
                    )
                    .order_by("id")
                    .first()
                )
                if row is not None:
                    row.status = InventoryCodeStatus.ISSUED
                    row.reference = reference
                    row.issued_at = timezone.now()
                    row.save(update_fields=["status", "reference", "issued_at"])
        except IntegrityError:
            # Another worker issued a code to this reward between our check and our update: that one stands.
            previous = self._previous(reference)
            if previous is None:
                raise SupplierUnavailable("inventory: concurrent draw for this reward; retry") from None
            return previous
        try:
            inventory_low_stock_check(supplier=self.supplier, product=product, denomination=amount)
        except Exception:  # the alert is a courtesy; the draw above has committed and must be returned
            logger.exception("low-stock check failed", extra={"event": "inventory.low_stock_check_failed"})
        if row is None:
            raise self._out_of_stock(product, amount, currency)
        logger.info(
            "inventory code issued",
            extra={"event": "inventory.issued", "reward_id": reference, "inventory_code_id": row.pk},
        )
        return _issued(row)

    def issue_many(self, *, product: Any, requests: list[IssueRequest]) -> IssueResults:
        """A batch's codes in one draw per denomination: codes already drawn for a reference are returned again,
        the rest take the oldest available codes with one SKIP LOCKED select and one UPDATE."""
        if sandbox_twin_active():
            return self._sandbox().issue_many(product=product, requests=requests)
        from catalog.inventory import inventory_low_stock_check
        from catalog.models import InventoryCode, InventoryCodeStatus

        results: IssueResults = {}
        for row in InventoryCode.objects.filter(reference__in=[r.reference for r in requests]):
            results[str(row.reference)] = (
                SupplierRejected("inventory: the code issued for this reward was voided")
                if row.status == InventoryCodeStatus.VOID
                else _issued(row)
            )
        wanted: dict[tuple[Decimal, str], list[str]] = {}
        for request in requests:
            if request.reference not in results:
                wanted.setdefault((request.amount, request.currency), []).append(request.reference)
        for (amount, currency), references in wanted.items():
            try:
                with transaction.atomic():
                    rows = list(
                        InventoryCode.objects.select_for_update(skip_locked=True)
                        .filter(supplier=self.supplier, product=product, denomination=amount, currency=currency,
                                status=InventoryCodeStatus.AVAILABLE)
                        .order_by("id")[: len(references)]
                    )  # fmt: skip
                    now = timezone.now()
                    for row, reference in zip(rows, references, strict=False):
                        row.status, row.reference, row.issued_at = InventoryCodeStatus.ISSUED, reference, now
                    InventoryCode.objects.bulk_update(rows, ["status", "reference", "issued_at"])
            except IntegrityError:
                # A reference got a code elsewhere meanwhile (a racing one-by-one retry): one by one, as issue does.
                group = [IssueRequest(reference, amount, currency) for reference in references]
                results.update(issue_each(self, product=product, requests=group))
                continue
            for row in rows:
                results[str(row.reference)] = _issued(row)
            missing = references[len(rows) :]
            if missing:
                error = self._out_of_stock(product, amount, currency)
                results.update(dict.fromkeys(missing, error))
            try:
                inventory_low_stock_check(supplier=self.supplier, product=product, denomination=amount)
            except Exception:  # a courtesy, as in issue
                logger.exception("low-stock check failed", extra={"event": "inventory.low_stock_check_failed"})
        return results

    def _out_of_stock(self, product: Any, amount: Decimal, currency: str) -> SupplierError:
        logger.warning(
            "inventory out of stock",
            extra={"event": "inventory.out_of_stock", "supplier": self.supplier.code, "product_id": str(product.pk),
                   "amount": str(amount), "currency": currency},
        )  # fmt: skip
        message = f"out of stock: no {format_amount(amount, currency)} {currency} code for this product"
        if (self.supplier.config or {}).get("wait_for_restock"):
            return SupplierUnavailable(f"inventory: {message} (waiting for restock)")
        return SupplierRejected(f"inventory: {message}")

    def _previous(self, reference: str) -> IssuedCode | None:
        from catalog.models import InventoryCode, InventoryCodeStatus

        row = InventoryCode.objects.filter(reference=reference).first()
        if row is None:
            return None
        if row.status == InventoryCodeStatus.VOID:
            raise SupplierRejected("inventory: the code issued for this reward was voided")
        return _issued(row)

    def status(self, *, reference: str) -> str:
        if sandbox_twin_active():
            return self._sandbox().status(reference=reference)
        from catalog.models import InventoryCode, InventoryCodeStatus

        row = InventoryCode.objects.filter(reference=reference).only("status").first()
        if row is None:
            return "unknown"
        statuses: dict[str, str] = {InventoryCodeStatus.ISSUED: "issued", InventoryCodeStatus.VOID: "canceled"}
        return statuses.get(row.status, "pending")

    def void(self, *, reference: str, disclosed: bool) -> None:
        """A code nobody has seen goes back on the shelf; a disclosed one cannot be taken back.

        The operator bought these codes outright: there is no one to ask for a void. A code that never left the
        vault is as good as new, so it returns to stock (available, unreferenced) in the caller's transaction;
        one that was shown or sent may be in someone's hands, so it is refused and its money stays spent.
        """
        if sandbox_twin_active():
            return self._sandbox().void(reference=reference, disclosed=disclosed)
        from catalog.models import InventoryCode, InventoryCodeStatus

        if disclosed:
            raise SupplierRejected("inventory: a code that was shown or sent cannot be taken back into stock")
        returned = InventoryCode.objects.filter(reference=reference, status=InventoryCodeStatus.ISSUED).update(
            status=InventoryCodeStatus.AVAILABLE, reference=None, issued_at=None
        )
        if not returned:
            raise SupplierRejected("inventory: no issued code for this reward")
        logger.info("inventory code returned to stock", extra={"event": "inventory.returned", "reward_id": reference})
