"""Aggregate reads for the dashboard and reports: spend by program, rewards by status, the delivery funnel.

Each reads the maintained rollups (orders.rollups) of the schema in use (live or sandbox): a GROUP BY over
hours × statuses, whatever the number of rewards. Dates are days of the tenant's time zone (Tenant.timezone):
a day is the UTC hours from its local midnight to the next, so zones with whole-hour offsets are exact and a
zone offset by a half or quarter hour has its day edges rounded to the UTC hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import ApplicationError
from core.money import format_amount
from programs.models import Program

from .models import Engagement, RewardStatus
from .rollups import SPEND_GROUPS, reward_counts_by_engagement, reward_counts_by_status, spend_grouped

# Reached the recipient (a bounce, DELIVERY_FAILED, did not).
REACHED_STATES = (RewardStatus.DELIVERED, RewardStatus.OPENED, RewardStatus.REDEEMED, RewardStatus.EXPIRED)
# A delivery was attempted and is over: reached, bounced or failed.
ATTEMPTED_STATES = (*REACHED_STATES, RewardStatus.DELIVERY_FAILED, RewardStatus.FAILED)


def report_zone() -> ZoneInfo:
    """The time zone of the tenant in use (its sandbox twin carries the same), UTC when none or unknown."""
    name = getattr(getattr(connection, "tenant", None), "timezone", "") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def report_today() -> date:
    return timezone.now().astimezone(report_zone()).date()


def _bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """Local days [since, until] as the instants [since's midnight, the midnight after until) in the tenant zone."""
    zone = report_zone()

    def midnight(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=zone)

    return (
        midnight(since) if since is not None else None,
        midnight(until + timedelta(days=1)) if until is not None else None,
    )


def report_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """The instants [since's local midnight, the midnight after until) of a report's days, for reports kept
    elsewhere (points, discounts) that read timestamps rather than the rollups' hours."""
    start, end = _bounds(since, until)
    assert start is not None and end is not None
    return start, end


@dataclass(frozen=True)
class ProgramSpend:
    program: str  # the program's name, or "" for spend without one
    currency: str
    total: Decimal
    captures: int


def spend_by_program(*, since: date, until: date | None = None) -> list[ProgramSpend]:
    """Money spent (captured less refunded) on local days [since, until], per program and funding currency."""
    start, end = _bounds(since, until)
    rows = spend_grouped(group_by="program", since=start, until=end)
    names = dict(Program.objects.filter(pk__in=[int(r.key) for r in rows if r.key]).values_list("pk", "name"))
    spend = [
        ProgramSpend(program=names.get(int(r.key), "") if r.key else "", currency=r.currency, total=r.amount,
                     captures=r.captures)
        for r in rows
    ]  # fmt: skip
    return sorted(spend, key=lambda row: (row.currency, -row.total))


def reward_status_counts(*, since: date | None = None, until: date | None = None) -> dict[str, int]:
    """Rewards created on local days [since, until] per status, every status present (zeros included), in the
    state machine's order; read from the maintained rollup, never by counting rewards."""
    start, end = _bounds(since, until)
    counts = reward_counts_by_status(since=start, until=end)
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


def breakage_by_currency(*, since: datetime | None = None, until: datetime | None = None) -> list[Breakage]:
    """Breakage in the schema in use, per currency, of links that expired in [since, until): one GROUP BY."""
    from .models import ExpiryOutcome, RewardExpiry

    totals: dict[str, dict[str, tuple[Decimal, int]]] = {}
    expiries = RewardExpiry.objects.all()
    if since is not None:
        expiries = expiries.filter(created_at__gte=since)
    if until is not None:
        expiries = expiries.filter(created_at__lt=until)
    rows = expiries.values("currency", "outcome").annotate(total=Sum("amount"), n=Count("id")).order_by()
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


@dataclass(frozen=True)
class RewardFunnel:
    """What became of the rewards created in a period: each stage counts the ones after it, so the funnel never
    widens (sent >= delivered >= opened >= clicked, and opened >= redeemed). Opened and clicked are what the
    recipient did (Reward.opened_at, clicked_at), kept when the reward later expires."""

    created: int
    sent: int  # a delivery was attempted and is over
    delivered: int  # reached the recipient
    opened: int  # of those delivered: opened (pixel, link, claim page) or redeemed
    clicked: int  # of those opened: followed a link of the email
    redeemed: int
    expired: int
    failed: int  # failed, or bounced (delivery_failed)

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    def rates(self) -> dict[str, float | None]:
        return {
            "delivery_rate": self._rate(self.delivered, self.sent),
            "open_rate": self._rate(self.opened, self.delivered),
            "click_rate": self._rate(self.clicked, self.delivered),
            "redemption_rate": self._rate(self.redeemed, self.delivered),
            "failure_rate": self._rate(self.failed, self.sent),
        }


def reward_engagement_counts(*, since: date | None = None, until: date | None = None) -> dict[tuple[str, int], int]:
    """Rewards created on local days [since, until] per (status, engagement), from the maintained rollup."""
    start, end = _bounds(since, until)
    return reward_counts_by_engagement(since=start, until=end)


def reward_funnel(*, since: date | None = None, until: date | None = None) -> RewardFunnel:
    return reward_funnel_from(reward_engagement_counts(since=since, until=until))


def reward_funnel_from(counts: dict[tuple[str, int], int]) -> RewardFunnel:
    """The funnel from (status, engagement) counts. Opened and clicked count only rewards that reached the
    recipient, so neither can exceed `delivered`; a redemption counts as opened whatever its engagement."""

    def count(states: tuple[str, ...], *, engaged_at_least: int = Engagement.NONE) -> int:
        return sum(n for (status, level), n in counts.items() if status in states and level >= engaged_at_least)

    reached = tuple(str(s) for s in REACHED_STATES)
    return RewardFunnel(
        created=sum(counts.values()),
        sent=count(tuple(str(s) for s in ATTEMPTED_STATES)),
        delivered=count(reached),
        opened=count(reached, engaged_at_least=Engagement.OPENED) + counts.get((RewardStatus.REDEEMED, 0), 0),
        clicked=count(reached, engaged_at_least=Engagement.CLICKED),
        redeemed=count((RewardStatus.REDEEMED,)),
        expired=count((RewardStatus.EXPIRED,)),
        failed=count((RewardStatus.FAILED, RewardStatus.DELIVERY_FAILED)),
    )


# --- The reports API and page (GET /api/v1/reports/…, portal Reports) --------------------------------------

REPORT_GROUPS = tuple(SPEND_GROUPS)
MAX_REPORT_DAYS = 3660  # ten years: a rollup row per day at most, so even that is a small read


def report_period(*, since: str | None, until: str | None) -> tuple[date, date]:
    """The report's [from, to] days (of the tenant's zone) from ISO dates (default: the last 30 days); refused
    when not dates, in the wrong order or longer than MAX_REPORT_DAYS."""
    today = report_today()
    parsed: dict[str, date | None] = {}
    for name, text in (("from", since), ("to", until)):
        try:
            parsed[name] = date.fromisoformat(text) if text else None
        except ValueError:
            raise ApplicationError(
                _("%(name)s must be a date, YYYY-MM-DD.") % {"name": name},
                code="validation_error",
                status=400,
                errors={name: [_("Use YYYY-MM-DD.")]},
            ) from None
    end = parsed["to"] or today
    start = parsed["from"] or end - timedelta(days=29)
    if start > end:
        raise ApplicationError(
            _("from is after to."), code="validation_error", status=400, errors={"to": [_("Before from.")]}
        )
    if (end - start).days >= MAX_REPORT_DAYS:
        raise ApplicationError(
            _("A report covers at most %(n)d days.") % {"n": MAX_REPORT_DAYS},
            code="validation_error",
            status=400,
            errors={"from": [_("Too long a period.")]},
        )
    return start, end


def _labels(group_by: str, keys: set[str]) -> dict[str, str]:
    keys = {key for key in keys if key}
    if group_by == "program" and keys:
        return {
            str(pk): name
            for pk, name in Program.objects.filter(pk__in=[int(k) for k in keys]).values_list("pk", "name")
        }
    if group_by == "product" and keys:
        from catalog.models import Product

        products = Product.objects.filter(pk__in=keys).select_related("brand")
        return {str(p.pk): f"{p.name}" for p in products}
    return {key: key for key in keys}


def spend_report(*, since: date, until: date, group_by: str) -> dict[str, Any]:
    """Net spend (captures less refunds, posted in [since, until]) per funding currency and group, with totals
    per currency: the ledger's spent-account movements over the period, to the cent."""
    if group_by not in SPEND_GROUPS:
        raise ApplicationError(
            _("group_by must be one of %(choices)s.") % {"choices": ", ".join(REPORT_GROUPS)},
            code="validation_error",
            status=400,
            errors={"group_by": [", ".join(REPORT_GROUPS)]},
        )
    zone = report_zone()
    start, end = _bounds(since, until)
    rows = spend_grouped(group_by=group_by, since=start, until=end, zone=zone.key)
    labels = _labels(group_by, {row.key for row in rows})
    none_label = {"program": _("No program"), "department": _("No department")}.get(group_by, _("Other"))
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.amount
    return {
        "from": since.isoformat(),
        "to": until.isoformat(),
        "timezone": zone.key,
        "group_by": group_by,
        "rows": [
            {
                "key": row.key or None,
                "label": labels.get(row.key, row.key) if row.key else str(none_label),
                "currency": row.currency,
                "amount": format_amount(row.amount, row.currency),
                "captures": row.captures,
                "refunds": row.refunds,
            }
            for row in rows
        ],
        "totals": [
            {"currency": currency, "amount": format_amount(amount, currency)}
            for currency, amount in sorted(totals.items())
        ],
    }


def spend_report_table(report: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    header = [report["group_by"], "label", "currency", "amount", "captures", "refunds"]
    rows: list[list[object]] = [
        [row["key"] or "", row["label"], row["currency"], Decimal(row["amount"]), row["captures"], row["refunds"]]
        for row in report["rows"]
    ]
    rows += [["total", "", t["currency"], Decimal(t["amount"]), "", ""] for t in report["totals"]]
    return header, rows


FUNNEL_STAGES = ("created", "sent", "delivered", "opened", "clicked", "redeemed", "expired", "failed")


def rewards_report(*, since: date, until: date) -> dict[str, Any]:
    """What became of the rewards created in [since, until]: the funnel, its rates, and every status."""
    engagement = reward_engagement_counts(since=since, until=until)
    funnel = reward_funnel_from(engagement)
    counts = {status: 0 for status in RewardStatus.values}
    for (status, _level), n in engagement.items():
        counts[status] = counts.get(status, 0) + n
    return {
        "from": since.isoformat(),
        "to": until.isoformat(),
        "timezone": report_zone().key,
        **{stage: getattr(funnel, stage) for stage in FUNNEL_STAGES},
        "rates": funnel.rates(),
        "by_status": counts,
    }


def rewards_report_table(report: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    header = ["measure", "value"]
    rows: list[list[object]] = [[stage, report[stage]] for stage in FUNNEL_STAGES]
    rows += [[name, "" if value is None else Decimal(str(value))] for name, value in report["rates"].items()]
    rows += [[f"status:{status}", n] for status, n in report["by_status"].items()]
    return header, rows
