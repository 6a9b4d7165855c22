"""What an order would cost before it is placed: order_create's own planning (validation, FX, fees), no writes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from funds.selectors import balance_get

from .planning import RewardInput, order_plan, order_totals


@dataclass(frozen=True)
class OrderQuote:
    currency: str  # the funding currency the order would be charged in
    face_value: Decimal  # sum of face values, in face_currency
    face_currency: str
    count: int  # rewards the order would create
    charge: Decimal  # face value converted to `currency`
    fees: Decimal  # FX fees
    shipping: Decimal
    total: Decimal  # what funds_hold would hold: charge + fees + shipping
    fx_rate: Decimal | None  # None when rewards are charged at several rates
    available: Decimal | None  # available funds in `currency` now (None: no account in that currency)

    @property
    def converted(self) -> bool:
        return self.currency != self.face_currency

    @property
    def covered(self) -> bool:
        """The available funds cover the total (always, for a total of 0: zero-cost rewards hold nothing)."""
        return self.total == 0 or (self.available is not None and self.available >= self.total)


def order_quote(
    *,
    order_type: str,
    rewards: list[RewardInput],
    program_slug: str | None = None,
    funding_currency: str | None = None,
) -> OrderQuote:
    """Validate an order exactly as order_create would and price it; raises the same ApplicationErrors.

    Uses the same planner as order_create (orders.planning.order_plan), so the quoted total is the amount
    that order_create holds; the totals below are summed the way order_create sums them.
    """
    _, currency, planned, fx_rate = order_plan(
        order_type=order_type, rewards=rewards, program_slug=program_slug, funding_currency=funding_currency
    )
    charge, fees, shipping, total = order_totals(planned)
    face_currencies = {p.product.currency for p in planned}
    face_currency = face_currencies.pop() if len(face_currencies) == 1 else currency
    balance = balance_get(currency=currency)
    return OrderQuote(
        currency=currency,
        face_value=sum((Decimal(p.spec.amount) for p in planned), Decimal(0)),
        face_currency=face_currency,
        count=len(planned),
        charge=charge,
        fees=fees,
        shipping=shipping,
        total=total,
        fx_rate=fx_rate,
        available=balance.available if balance is not None else None,
    )
