"""Aggregate reads for the dashboard: spend by program, rewards by status, delivery and redemption rates.

Each is one GROUP BY query on the schema in use (live or sandbox), whatever the number of orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Sum

from .models import Order, OrderStatus, Reward, RewardStatus

# Reached the recipient (a bounce, DELIVERY_FAILED, did not).
REACHED_STATES = (RewardStatus.DELIVERED, RewardStatus.OPENED, RewardStatus.REDEEMED, RewardStatus.EXPIRED)
# A delivery was attempted and is over: reached, bounced or failed.
ATTEMPTED_STATES = (*REACHED_STATES, RewardStatus.DELIVERY_FAILED, RewardStatus.FAILED)


@dataclass(frozen=True)
class ProgramSpend:
    program: str  # the program's name, or "" for orders without one
    currency: str
    total: Decimal
    orders: int


def spend_by_program(*, since: datetime) -> list[ProgramSpend]:
    """What orders created since `since` charged, per program and funding currency (canceled/failed excluded)."""
    rows = (
        Order.objects.filter(created_at__gte=since)
        .exclude(status__in=[OrderStatus.CANCELED, OrderStatus.FAILED])
        .values("program__name", "currency")
        .annotate(total=Sum("total_amount"), orders=Count("id"))
        .order_by("currency", "-total")
    )
    return [
        ProgramSpend(
            program=row["program__name"] or "", currency=row["currency"], total=row["total"], orders=row["orders"]
        )
        for row in rows
    ]


def reward_status_counts() -> dict[str, int]:
    """Rewards per status, every status present (zeros included), in the state machine's order."""
    counts = dict(Reward.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in RewardStatus.values}


@dataclass(frozen=True)
class RewardRates:
    attempted: int
    reached: int
    redeemed: int

    @property
    def delivery_rate(self) -> float | None:
        return self.reached / self.attempted if self.attempted else None

    @property
    def redemption_rate(self) -> float | None:
        return self.redeemed / self.reached if self.reached else None


def reward_rates(counts: dict[str, int]) -> RewardRates:
    """Delivery rate (reached / attempted) and redemption rate (redeemed / reached) from status counts."""
    return RewardRates(
        attempted=sum(counts.get(s, 0) for s in ATTEMPTED_STATES),
        reached=sum(counts.get(s, 0) for s in REACHED_STATES),
        redeemed=counts.get(RewardStatus.REDEEMED, 0),
    )


@dataclass(frozen=True)
class Breakage:
    """Claim links that expired unclaimed, per funding currency (orders.expiry's RewardExpiry rows)."""

    currency: str
    released: Decimal  # went back to available funds
    released_count: int
    kept: Decimal  # stayed spent: the program keeps codes valid, the code was disclosed, or the void was refused
    kept_count: int


def breakage_by_currency() -> list[Breakage]:
    """Breakage in the schema in use, per currency: one GROUP BY over the expiry records."""
    from .models import ExpiryOutcome, RewardExpiry

    totals: dict[str, dict[str, tuple[Decimal, int]]] = {}
    rows = RewardExpiry.objects.values("currency", "outcome").annotate(total=Sum("amount"), n=Count("id")).order_by()
    for row in rows:
        totals.setdefault(row["currency"], {})[row["outcome"]] = (row["total"] or Decimal(0), row["n"])
    result = []
    for currency in sorted(totals):
        released = totals[currency].get(ExpiryOutcome.RELEASED, (Decimal(0), 0))
        others = [value for outcome, value in totals[currency].items() if outcome != ExpiryOutcome.RELEASED]
        result.append(
            Breakage(
                currency=currency,
                released=released[0],
                released_count=released[1],
                kept=sum((value[0] for value in others), Decimal(0)),
                kept_count=sum(value[1] for value in others),
            )
        )
    return result
