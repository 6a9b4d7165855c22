"""Splitting a hold: part of a pending hold (a bulk batch's) becomes holds of its own (the batch's rewards),
with the balances unchanged; funds_hold_split_many does the same for thousands of parts with one COPY, and
funds_hold_split_select with one INSERT … SELECT of parts the caller's query reads."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import transaction

from core.errors import ApplicationError
from funds.models import Hold
from funds.selectors import ledger_invariant_violations
from funds.services import (
    funds_deposit,
    funds_hold,
    funds_hold_capture,
    funds_hold_release,
    funds_hold_split,
    funds_hold_split_many,
    funds_hold_split_select,
)
from testsupport.funds import balances

pytestmark = pytest.mark.usefixtures("in_tenant_a")


@pytest.fixture
def batch_hold(in_tenant_a) -> Hold:
    """100.00 deposited, 60.00 of it held for a batch."""
    funds_deposit(currency="USD", amount="100.00")
    return funds_hold(currency="USD", amount=Decimal("60.00"), reference="batch:1")


def test_split_makes_new_holds_and_leaves_the_balances_as_they_were(batch_hold):
    parts = funds_hold_split(hold=batch_hold, parts=[("reward:1", Decimal("10.00")), ("reward:2", Decimal("15.00"))])
    assert [(h.reference, h.amount, h.status) for h in parts] == [
        ("reward:1", Decimal("10.00"), "pending"),
        ("reward:2", Decimal("15.00"), "pending"),
    ]
    batch_hold.refresh_from_db()
    assert (batch_hold.amount, batch_hold.status) == (Decimal("35.00"), "pending")
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    # Each part now lives its own life.
    funds_hold_capture(hold=parts[0])
    funds_hold_release(hold=parts[1])
    assert balances() == (Decimal("90.00"), Decimal("35.00"), Decimal("55.00"))
    assert ledger_invariant_violations() == []


def test_splitting_all_of_a_hold_releases_it(batch_hold):
    funds_hold_split(hold=batch_hold, parts=[("reward:1", Decimal("60.00"))])
    assert (batch_hold.amount, batch_hold.status) == (0, "released")  # the caller's instance follows
    batch_hold.refresh_from_db()
    assert (batch_hold.amount, batch_hold.status) == (0, "released") and batch_hold.resolved_at is not None
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    assert ledger_invariant_violations() == []


def test_a_split_larger_than_the_hold_is_refused_and_changes_nothing(batch_hold):
    # The split runs in its caller's transaction (no savepoint of its own): the caller's block rolls back.
    with pytest.raises(ApplicationError) as refused, transaction.atomic():
        funds_hold_split(hold=batch_hold, parts=[("reward:1", Decimal("50.00")), ("reward:2", Decimal("10.01"))])
    assert (refused.value.code, refused.value.status) == ("invalid_state", 409)
    batch_hold.refresh_from_db()
    assert batch_hold.amount == Decimal("60.00") and Hold.objects.count() == 1
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    assert ledger_invariant_violations() == []


def test_a_resolved_hold_cannot_be_split(batch_hold):
    funds_hold_release(hold=batch_hold)
    with pytest.raises(ApplicationError) as refused, transaction.atomic():
        funds_hold_split(hold=batch_hold, parts=[("reward:1", Decimal("1.00"))])
    assert refused.value.code == "invalid_state"
    assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))
    assert ledger_invariant_violations() == []


def test_split_parts_must_be_positive_and_none_is_nothing(batch_hold):
    assert funds_hold_split(hold=batch_hold, parts=[]) == []
    with pytest.raises(ApplicationError) as refused:
        funds_hold_split(hold=batch_hold, parts=[("reward:1", Decimal("5.00")), ("reward:2", Decimal("0"))])
    assert refused.value.code == "validation_error"
    assert Hold.objects.count() == 1
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    assert ledger_invariant_violations() == []


def test_split_many_writes_the_parts_under_the_callers_ids(batch_hold):
    parts = [(str(uuid.uuid4()), f"reward:{i}", Decimal("2.50")) for i in range(20)]
    funds_hold_split_many(hold=batch_hold, parts=parts, total=Decimal("50.00"))
    holds = {str(h.id): h for h in Hold.objects.exclude(pk=batch_hold.pk)}
    assert set(holds) == {hold_id for hold_id, _, _ in parts}
    assert all(h.status == "pending" and h.amount == Decimal("2.50") for h in holds.values())
    assert (batch_hold.amount, batch_hold.status) == (Decimal("10.00"), "pending")
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    for hold in list(holds.values())[:4]:
        funds_hold_capture(hold=hold)
    assert balances() == (Decimal("90.00"), Decimal("50.00"), Decimal("40.00"))
    assert ledger_invariant_violations() == []


def test_split_many_refuses_a_wrong_total_or_too_much(batch_hold):
    parts = [(str(uuid.uuid4()), "reward:1", Decimal("30.00")), (str(uuid.uuid4()), "reward:2", Decimal("31.00"))]
    with pytest.raises(ApplicationError) as refused:
        funds_hold_split_many(hold=batch_hold, parts=parts, total=Decimal("60.00"))
    assert refused.value.code == "validation_error"
    with pytest.raises(ApplicationError) as refused, transaction.atomic():
        funds_hold_split_many(hold=batch_hold, parts=parts, total=Decimal("61.00"))
    assert refused.value.code == "invalid_state"
    funds_hold_split_many(hold=batch_hold, parts=[], total=Decimal("0"))  # nothing to do
    assert Hold.objects.count() == 1
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    assert ledger_invariant_violations() == []


PARTS_SQL = "SELECT id, reference, amount FROM (VALUES %s) AS v(id, reference, amount)"


def _parts_sql(parts: list[tuple[str, str, Decimal]]) -> tuple[str, list]:
    values = ", ".join("(%s::uuid, %s, %s::numeric)" for _ in parts)
    return PARTS_SQL % values, [value for part in parts for value in part]


def test_split_select_writes_the_parts_its_query_reads(batch_hold):
    parts = [(str(uuid.uuid4()), f"reward:{i}", Decimal("12.50")) for i in range(4)]
    sql, params = _parts_sql(parts)
    funds_hold_split_select(hold=batch_hold, parts_sql=sql, params=params, total=Decimal("50.00"), count=4)
    holds = {str(h.id): (h.reference, h.amount, h.status) for h in Hold.objects.exclude(pk=batch_hold.pk)}
    assert holds == {hold_id: (reference, amount, "pending") for hold_id, reference, amount in parts}
    assert (batch_hold.amount, batch_hold.status) == (Decimal("10.00"), "pending")
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    assert ledger_invariant_violations() == []


def test_split_select_refuses_parts_other_than_expected_and_changes_nothing(batch_hold):
    parts = [(str(uuid.uuid4()), "reward:1", Decimal("30.00")), (str(uuid.uuid4()), "reward:2", Decimal("25.00"))]
    sql, params = _parts_sql(parts)
    for total, count in ((Decimal("60.00"), 2), (Decimal("55.00"), 3)):  # another sum; another number of parts
        with pytest.raises(ApplicationError) as refused, transaction.atomic():
            funds_hold_split_select(hold=batch_hold, parts_sql=sql, params=params, total=total, count=count)
        assert refused.value.code == "ledger"
    with pytest.raises(ApplicationError) as refused, transaction.atomic():
        funds_hold_split_select(hold=batch_hold, parts_sql=sql, params=params, total=Decimal("61.00"), count=2)
    assert refused.value.code == "invalid_state"  # more than the source holds
    batch_hold.refresh_from_db()
    assert Hold.objects.count() == 1 and batch_hold.amount == Decimal("60.00")
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    assert ledger_invariant_violations() == []
