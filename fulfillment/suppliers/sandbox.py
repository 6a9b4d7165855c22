"""The sandbox supplier: realistic codes and PINs, derived from the reference (so re-issuing is idempotent).

Behaviour per product is set in the Supplier's config (the operator's admin, or tests):
  {"products": {"<product uuid>": {"fail": "retryable" | "permanent", "fail_times": 2, "delay_ms": 1500}}}
`fail_times` fails only the first N attempts for a reference (counted in Redis), so recovery is testable.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any

from django.conf import settings

from .base import (
    IssuedCode,
    IssueRequest,
    IssueResults,
    SupplierRejected,
    SupplierUnavailable,
    issue_each,
    register_adapter,
)

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: recipients type these


def _derive(reference: str, purpose: str, length: int, alphabet: str) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{purpose}:{reference}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


@register_adapter("sandbox")
class SandboxSupplier:
    def __init__(self, supplier: Any) -> None:
        self.supplier = supplier

    def _behaviour(self, product: Any) -> dict[str, Any]:
        behaviour: dict[str, Any] = (self.supplier.config or {}).get("products", {}).get(str(product.id), {})
        return behaviour

    def issue(self, *, product: Any, amount: Decimal, currency: str, reference: str) -> IssuedCode:
        from core.redis import get_redis

        if get_redis().exists(_void_key(reference)):
            raise SupplierRejected("sandbox: the code issued for this reward was voided")
        behaviour = self._behaviour(product)
        if behaviour.get("delay_ms"):
            time.sleep(int(behaviour["delay_ms"]) / 1000)
        failure = behaviour.get("fail")
        if failure:
            fail_times = behaviour.get("fail_times")
            if fail_times is not None:
                from core.redis import get_redis

                attempts = get_redis().incr(f"rp:sandbox-attempts:{reference}")
                get_redis().expire(f"rp:sandbox-attempts:{reference}", 86400)
                failure = failure if attempts <= int(fail_times) else None
            if failure == "retryable":
                raise SupplierUnavailable("sandbox: simulated timeout")
            if failure == "permanent":
                raise SupplierRejected("sandbox: simulated rejection (product unavailable at supplier)")
        return _code_for(reference)

    def issue_many(self, *, product: Any, requests: list[IssueRequest]) -> IssueResults:
        """One Redis round trip for the whole batch's void checks, instead of one per reference."""
        if self._behaviour(product):  # simulated failures and delays count per reference: the one-by-one path
            return issue_each(self, product=product, requests=requests)
        from core.redis import get_redis

        pipeline = get_redis().pipeline(transaction=False)
        for request in requests:
            pipeline.exists(_void_key(request.reference))
        voided = pipeline.execute()
        return {
            request.reference: (
                SupplierRejected("sandbox: the code issued for this reward was voided")
                if was_voided
                else _code_for(request.reference)
            )
            for request, was_voided in zip(requests, voided, strict=True)
        }

    def status(self, *, reference: str) -> str:
        from core.redis import get_redis

        return "canceled" if get_redis().exists(_void_key(reference)) else "issued"

    def void(self, *, reference: str, disclosed: bool) -> None:
        """Voids any code, disclosed or not, as a real vendor with a cancel endpoint would.

        The product's config can make it refuse (`"void": "refuse"`) or time out (`"void": "unavailable"`),
        to try both answers in the sandbox. Once voided, this sandbox never issues that reference again.
        """
        from core.redis import get_redis

        behaviour = (self.supplier.config or {}).get("void")
        if behaviour == "refuse":
            raise SupplierRejected("sandbox: simulated refusal to void (the card was spent at the merchant)")
        if behaviour == "unavailable":
            raise SupplierUnavailable("sandbox: simulated timeout while voiding")
        get_redis().set(_void_key(reference), 1, ex=VOID_MEMORY_SECONDS)


def _code_for(reference: str) -> IssuedCode:
    raw = _derive(reference, "code", 16, ALPHABET)
    code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    pin = _derive(reference, "pin", 8, "0123456789")  # 8 digits: log scans can look for it
    return IssuedCode(code=code, pin=pin, reference=f"sbx_{_derive(reference, 'ref', 12, ALPHABET).lower()}")


VOID_MEMORY_SECONDS = 90 * 86400  # the sandbox remembers a void this long (a sandbox needs no ledger of its own)


def _void_key(reference: str) -> str:
    return f"rp:sandbox-void:{reference}"
