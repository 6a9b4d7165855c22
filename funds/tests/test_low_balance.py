"""The low-balance threshold: one balance.low event and one email when available funds cross below it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import ApplicationError
from funds.selectors import balance_get, ledger_invariant_violations, low_balance_recipients
from funds.services import (
    funds_deposit,
    funds_hold,
    funds_hold_release,
    funds_set_low_balance_threshold,
    low_balance_recipients_set,
)
from testsupport.funds import balances
from webhooks.models import Event

pytestmark = pytest.mark.usefixtures("in_tenant_a")


def _low_events() -> list[dict]:
    return [e.data for e in Event.objects.filter(type="balance.low").order_by("created_at")]


def test_the_threshold_is_shown_with_the_balance_and_can_be_cleared():
    funds_set_low_balance_threshold(currency="usd", threshold="100.00")
    assert balance_get(currency="USD").low_balance_threshold == Decimal("100.00")
    assert balances("USD") == (0, 0, 0)  # setting a threshold moves no money
    funds_set_low_balance_threshold(currency="USD", threshold="0")
    assert balance_get(currency="USD").low_balance_threshold == 0
    funds_set_low_balance_threshold(currency="USD", threshold="")
    assert balance_get(currency="USD").low_balance_threshold is None
    assert ledger_invariant_violations() == []


@pytest.mark.parametrize("threshold", ["-1", "1.001", "lots"])
def test_a_bad_threshold_is_refused_and_the_old_one_stays(threshold):
    funds_set_low_balance_threshold(currency="USD", threshold="50")
    with pytest.raises(ApplicationError) as refused:
        funds_set_low_balance_threshold(currency="USD", threshold=threshold)
    assert refused.value.code == "validation_error" and "low_balance_threshold" in refused.value.errors
    assert balance_get(currency="USD").low_balance_threshold == Decimal("50")


def test_crossing_below_the_threshold_alerts_once(mailoutbox, django_capture_on_commit_callbacks):
    low_balance_recipients_set(emails=["Finance@Alpha.test", " ops@alpha.test", "finance@alpha.test", ""])
    assert sorted(low_balance_recipients()) == ["finance@alpha.test", "ops@alpha.test"]
    funds_deposit(currency="USD", amount="100.00")
    funds_set_low_balance_threshold(currency="USD", threshold="50.00")

    with django_capture_on_commit_callbacks(execute=True):
        funds_hold(currency="USD", amount=Decimal("50.00"), reference="reward:a")  # 50 left: not below
    assert _low_events() == [] and mailoutbox == []

    with django_capture_on_commit_callbacks(execute=True):
        crossing = funds_hold(currency="USD", amount=Decimal("0.01"), reference="reward:b")  # 49.99: below
    assert _low_events() == [{"currency": "USD", "available": "49.99", "low_balance_threshold": "50.00"}]
    [email] = mailoutbox
    assert sorted(email.to) == ["finance@alpha.test", "ops@alpha.test"]
    assert "49.99 USD" in email.subject and "below 50.00 USD" in email.body

    with django_capture_on_commit_callbacks(execute=True):
        funds_hold(currency="USD", amount=Decimal("9.99"), reference="reward:c")  # already below: no new alert
    assert len(_low_events()) == 1 and len(mailoutbox) == 1

    # Back above it (a release), then below again: a new crossing, a new alert.
    funds_hold_release(hold=crossing)
    funds_deposit(currency="USD", amount="20.00")
    assert balances("USD") == (Decimal("120.00"), Decimal("59.99"), Decimal("60.01"))
    with django_capture_on_commit_callbacks(execute=True):
        funds_hold(currency="USD", amount=Decimal("20.00"), reference="reward:d")
    assert [e["available"] for e in _low_events()] == ["49.99", "40.01"]
    assert len(mailoutbox) == 2
    assert ledger_invariant_violations() == []


def test_without_a_threshold_nothing_alerts(mailoutbox, django_capture_on_commit_callbacks):
    low_balance_recipients_set(emails=["finance@alpha.test"])
    funds_deposit(currency="USD", amount="10.00")
    with django_capture_on_commit_callbacks(execute=True):
        funds_hold(currency="USD", amount=Decimal("10.00"), reference="reward:all")
    assert balances("USD") == (Decimal("10.00"), Decimal("10.00"), 0)
    assert _low_events() == [] and mailoutbox == []
    assert ledger_invariant_violations() == []


def test_bad_recipients_are_refused_and_the_list_is_kept():
    low_balance_recipients_set(emails=["finance@alpha.test"])
    with pytest.raises(ApplicationError) as refused:
        low_balance_recipients_set(emails=["ok@alpha.test", "not an address"])
    assert refused.value.code == "validation_error" and "emails" in refused.value.errors
    with pytest.raises(ApplicationError):
        low_balance_recipients_set(emails=[f"p{i}@alpha.test" for i in range(21)])
    assert low_balance_recipients() == ["finance@alpha.test"]
    assert low_balance_recipients_set(emails=[]) == [] and low_balance_recipients() == []


def test_each_recipient_reads_the_alert_in_their_portal_language(mailoutbox, django_capture_on_commit_callbacks):
    from accounts.services import staff_create, user_language_set

    aminah, _ = staff_create(email="aminah@alpha.test", role="finance")
    user_language_set(user=aminah, language="ms")
    low_balance_recipients_set(emails=["aminah@alpha.test", "finance@alpha.test"])  # the second is no staff member
    funds_deposit(currency="USD", amount="100.00")
    funds_set_low_balance_threshold(currency="USD", threshold="50.00")

    with django_capture_on_commit_callbacks(execute=True):
        funds_hold(currency="USD", amount=Decimal("60.00"), reference="reward:a")

    by_recipient = {tuple(email.to): email for email in mailoutbox}
    assert by_recipient[("aminah@alpha.test",)].subject == "Baki rendah: 40.00 USD tersedia"
    assert "jatuh di bawah 50.00 USD" in by_recipient[("aminah@alpha.test",)].body
    assert by_recipient[("finance@alpha.test",)].subject == "Low balance: 40.00 USD available"  # the company's
