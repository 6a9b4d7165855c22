"""Refunds are idempotent in the ledger: one per reference, whoever asks and however often."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from funds.models import LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit, funds_hold, funds_hold_capture, funds_refund


def _spent(amount: str) -> None:
    funds_deposit(currency="USD", amount="100.00")
    funds_hold_capture(hold=funds_hold(currency="USD", amount=Decimal(amount), reference="reward:x"))


def test_a_second_refund_with_the_same_reference_posts_nothing(tenant_a):
    with tenant_context(tenant_a):
        _spent("40")
        first = funds_refund(currency="USD", amount=Decimal("40"), reference="reward:1")
        again = funds_refund(currency="USD", amount=Decimal("40.00"), reference="reward:1")
        assert again.pk == first.pk
        assert balance_get(currency="USD").available == Decimal("100")
        assert LedgerTransaction.objects.filter(kind="refund").count() == 1
        with pytest.raises(ValueError, match="another amount"):
            funds_refund(currency="USD", amount=Decimal("39"), reference="reward:1")
        with pytest.raises(ValueError, match="needs a reference"):
            funds_refund(currency="USD", amount=Decimal("1"), reference="")
        assert ledger_invariant_violations() == []


def test_concurrent_refunds_of_one_reference_post_once(committed_tenant):
    with tenant_context(committed_tenant):
        _spent("30")
        before = balance_get(currency="USD").available

    def refund(_):
        with tenant_context(committed_tenant):
            try:
                return funds_refund(currency="USD", amount=Decimal("30"), reference="reward:race").pk
            finally:
                connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(refund, range(8)))
    with tenant_context(committed_tenant):
        assert len(ids) == 1
        assert balance_get(currency="USD").available == before + Decimal("30")
        assert ledger_invariant_violations() == []
