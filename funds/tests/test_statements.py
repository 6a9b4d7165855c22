"""The monthly statement and the running balance agree with the ledger to the cent, over random postings spread
across months, whether or not the day totals were folded in meanwhile."""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum
from django_tenants.utils import tenant_context
from freezegun import freeze_time

from funds.models import LedgerEntry, LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit, funds_hold, funds_hold_capture, funds_hold_release, funds_refund
from funds.statements import ledger_days_compact, monthly_statement, next_month, posted_deltas, running_balances

MONTHS = [date(2026, 8, 1), date(2026, 9, 1), date(2026, 10, 1)]


def _posted_before(moment: datetime) -> Decimal:
    """The ledger itself: cash and holds entries of every transaction before `moment`."""
    total = LedgerEntry.objects.filter(
        account__kind__in=["cash", "holds"], account__currency="USD", transaction__created_at__lt=moment
    ).aggregate(total=Sum("amount"))["total"]
    return total or Decimal(0)


def _kind_total(kind: str, month: date) -> Decimal:
    start = datetime.combine(month, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(next_month(month), datetime.min.time(), tzinfo=UTC)
    rows = LedgerTransaction.objects.filter(kind=kind, currency="USD", created_at__gte=start, created_at__lt=end)
    return rows.aggregate(total=Sum("amount"))["total"] or Decimal(0)


def _random_postings(rng: random.Random) -> None:
    refunds = 0
    for month in MONTHS:
        for day in sorted(rng.sample(range(1, 28), 6)):
            with freeze_time(datetime(month.year, month.month, day, rng.randint(0, 23), tzinfo=UTC)):
                funds_deposit(currency="USD", amount=str(rng.randint(50, 300)))
                holds = [
                    funds_hold(currency="USD", amount=Decimal(rng.randint(1, 40)), reference=f"reward:{rng.random()}")
                    for _ in range(3)
                ]
                funds_hold_capture(hold=holds[0])
                funds_hold_release(hold=holds[1])  # holds[2] stays held across the month's end
                if rng.random() < 0.5:
                    refunds += 1
                    funds_refund(currency="USD", amount=holds[0].amount, reference=f"refund-{refunds}")
        if month == MONTHS[1]:
            ledger_days_compact()  # the first months folded in, the last still in pending deltas


def test_monthly_statements_equal_the_ledger(tenant_a):
    with tenant_context(tenant_a):
        _random_postings(random.Random(7))
        previous_closing = Decimal(0)
        for month in MONTHS:
            statement = monthly_statement(currency="USD", month=month + timedelta(days=10))
            month_end = datetime.combine(next_month(month), datetime.min.time(), tzinfo=UTC)
            assert statement.month == month
            assert statement.opening == previous_closing
            assert statement.closing == _posted_before(month_end)
            assert statement.deposits == _kind_total("deposit", month)
            assert statement.spend == _kind_total("capture", month)
            assert statement.refunds == _kind_total("refund", month)
            assert statement.closing == (
                statement.opening + statement.deposits - statement.spend + statement.refunds + statement.adjustments
            )
            assert statement.adjustments == 0  # holds and releases leave the balance as it was
            previous_closing = statement.closing
        assert previous_closing == balance_get(currency="USD").posted
        assert monthly_statement(currency="USD", month=date(2026, 12, 1)).opening == previous_closing
        assert ledger_invariant_violations() == []


def test_the_running_balance_walks_the_whole_ledger_to_zero(tenant_a):
    with tenant_context(tenant_a):
        _random_postings(random.Random(11))
        lines = list(LedgerTransaction.objects.filter(currency="USD").order_by("-created_at", "-id"))
        balances = running_balances(lines)
        assert balances[lines[0].id] == balance_get(currency="USD").posted
        middle = lines[len(lines) // 2 :]  # a later page: its first line's balance is read, not walked
        assert running_balances(middle) == {line.id: balances[line.id] for line in middle}
        oldest = lines[-1]  # whatever its kind (ties in time are ordered by id): before it, nothing
        assert balances[oldest.id] - posted_deltas([oldest.id]).get(oldest.id, Decimal(0)) == 0
