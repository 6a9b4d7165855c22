"""The supplier adapter interface.

`issue()` must be idempotent per `reference` (the reward id): asking twice for the same reference returns
the same code, never a second one. `issue_many()` is the same for a batch of references of one product (the
fulfilment drain asks once per product per batch); an adapter without a cheaper way answers it with
`issue_each`, one `issue()` per reference. That is what makes a worker crash between "supplier issued" and
"we stored it" safe to retry. `void()` is what makes a cancel after issue safe: money comes back only for a
code the supplier confirms it voided. Errors say whether retrying may help.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar


@dataclass(frozen=True)
class IssuedCode:
    code: str
    pin: str = ""
    reference: str = ""  # the supplier's own id for this card
    expires_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print a code, even in a traceback or a debugger
        return f"IssuedCode(reference={self.reference!r}, code=…{self.code[-4:]})"


class SupplierError(Exception):
    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SupplierUnavailable(SupplierError):
    """Timeouts, 5xx, throttling: try again later."""

    retryable = True


class SupplierRejected(SupplierError):
    """Invalid product or amount, out of stock for good, account problem: the reward fails now."""

    retryable = False


@dataclass(frozen=True)
class IssueRequest:
    """One code wanted from a batch: the reward id as `reference`, its face value and currency."""

    reference: str
    amount: Decimal
    currency: str


# Per reference: the code, or the error that reference alone got (a batch never fails as a whole).
IssueResults = dict[str, "IssuedCode | SupplierError"]


class SupplierAdapter(Protocol):
    def issue(self, *, product: Any, amount: Decimal, currency: str, reference: str) -> IssuedCode: ...

    def issue_many(self, *, product: Any, requests: list[IssueRequest]) -> IssueResults:
        """`issue()` for every request, each as idempotent per reference; an error is returned per reference."""
        ...

    def status(self, *, reference: str) -> str: ...  # "issued" | "pending" | "canceled" | "unknown"

    def void(self, *, reference: str, disclosed: bool) -> None:
        """Void the code issued for `reference` so it can never be spent; return only once that is confirmed.

        `disclosed`: the code has left our vault (shown or sent to someone). Raises SupplierRejected when the
        supplier cannot void it (then nothing is refunded) and SupplierUnavailable when it cannot be asked now.
        """
        ...


def issue_each(adapter: SupplierAdapter, *, product: Any, requests: list[IssueRequest]) -> IssueResults:
    """The fallback `issue_many`: one `issue()` per request, each error kept with its reference."""
    results: IssueResults = {}
    for request in requests:
        try:
            results[request.reference] = adapter.issue(
                product=product, amount=request.amount, currency=request.currency, reference=request.reference
            )
        except SupplierError as exc:
            results[request.reference] = exc
    return results


_FACTORIES: dict[str, Callable[[Any], SupplierAdapter]] = {}


_Adapter = TypeVar("_Adapter", bound=type[SupplierAdapter])


def register_adapter(kind: str) -> Callable[[_Adapter], _Adapter]:
    """Class decorator: `@register_adapter("sandbox")`; the class is built with the Supplier row."""

    def decorate(cls: _Adapter) -> _Adapter:
        _FACTORIES[kind] = cls
        return cls

    return decorate


def adapter_for(supplier: Any) -> SupplierAdapter:
    from . import generated, http, inventory, sandbox  # noqa: F401 — registers the built-in adapters

    try:
        factory = _FACTORIES[supplier.kind]
    except KeyError:
        raise SupplierRejected(f"No adapter for supplier kind {supplier.kind!r}") from None
    return factory(supplier)
