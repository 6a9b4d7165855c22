"""The platform as issuer: discount codes the platform makes itself (a merchant that hands out no code pool).

Each code is an HMAC of the reward's reference under the platform's secret: 16 characters of a 32-letter
alphabet (80 bits), so nobody without the secret can guess one, and issuing again for the same reference (a retry
after a crash) gives the same code, as every adapter must. Codes are stored encrypted on the reward like any
other; the merchant learns of a use through the partner redemption report (fulfillment.discounts).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .base import IssuedCode, IssueRequest, IssueResults, issue_each, register_adapter
from .sandbox import ALPHABET, _derive

PURPOSE = "discount-code"  # keeps these codes apart from the sandbox's, derived from the same secret


@register_adapter("generated")
class GeneratedSupplier:
    def __init__(self, supplier: Any) -> None:
        self.supplier = supplier

    def issue(self, *, product: Any, amount: Decimal, currency: str, reference: str) -> IssuedCode:
        raw = _derive(reference, PURPOSE, 16, ALPHABET)
        prefix = str((self.supplier.config or {}).get("prefix") or "DSC")
        code = "-".join([prefix, *(raw[i : i + 4] for i in range(0, 16, 4))])
        return IssuedCode(code=code, reference=f"gen_{_derive(reference, PURPOSE + ':ref', 12, ALPHABET)}")

    def issue_many(self, *, product: Any, requests: list[IssueRequest]) -> IssueResults:
        return issue_each(self, product=product, requests=requests)

    def status(self, *, reference: str) -> str:
        return "issued"

    def void(self, *, reference: str, disclosed: bool) -> None:
        """The platform is the issuer: a voided code is erased from the reward (orders.lifecycle), and a redemption
        report finds only codes still on a reward, so nothing needs telling."""
