"""The scheduler's tick with injected clocks: each person's own time zone (else the tenant's), send_time and
days_offset, same-local-day catch-up only, 29 February, DST days, anniversaries, audiences, and money refused
then retried the same day. Each assertion is what the tenant would see: who got a reward, once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail
from django_tenants.utils import tenant_context

from audit.actors import Actor
from automations.models import AutomationRun
from automations.running import automations_tick
from automations.services import automation_create
from funds.selectors import ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Order, Reward
from people.services import person_create
from webhooks.models import Event

ACTOR = Actor.cli()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add(external_id: str, **fields):
    return person_create(actor=ACTOR, fields={"external_id": external_id, "name": f"Person {external_id}",
                                              "email": f"{external_id}@example.com", **fields})  # fmt: skip


def automation(shop, trigger=None, **data):
    body = {"name": "Birthday", "trigger": trigger or {"type": "birthday"},
            "reward": {"product_id": str(shop.coffee_usd.id), "amount": "25.00",
                       "message": "Happy birthday, {first_name}!"},
            **data}  # fmt: skip
    return automation_create(actor=ACTOR, data=body)


def sent_to(auto) -> list[str]:
    """External ids of the people who got a reward from `auto`, one entry per reward."""
    return sorted(Reward.objects.filter(order__automation_id=auto.id).values_list("person__external_id", flat=True))


@pytest.fixture
def tenant(funded_a):
    with tenant_context(funded_a):
        yield funded_a


def test_each_person_at_nine_in_their_own_zone_once(tenant, shop):
    auto = automation(shop)
    add("kl", timezone="Asia/Kuala_Lumpur", birthday="12-07")  # UTC+8: 09:00 local is 01:00 UTC
    add("ny", timezone="America/New_York", birthday="1990-12-07")  # UTC-5: 09:00 local is 14:00 UTC
    add("tenant-zone", birthday="12-07")  # no zone: the tenant's (UTC)
    add("left", timezone="Asia/Kuala_Lumpur", birthday="12-07", status="left")
    add("other-day", timezone="Asia/Kuala_Lumpur", birthday="12-08")

    automations_tick(now=at("2026-12-07T00:59:00"))
    assert sent_to(auto) == []  # 08:59 in Kuala Lumpur
    automations_tick(now=at("2026-12-07T01:00:00"))
    assert sent_to(auto) == ["kl"]
    automations_tick(now=at("2026-12-07T09:30:00"))
    assert sent_to(auto) == ["kl", "tenant-zone"]
    for _ in range(2):  # later ticks, and a doubled one, send nothing again
        automations_tick(now=at("2026-12-07T14:00:00"))
    assert sent_to(auto) == ["kl", "ny", "tenant-zone"]
    reward = Reward.objects.get(person__external_id="kl")
    assert reward.message == "Happy birthday, Person!" and reward.recipient_email == "kl@example.com"
    run = AutomationRun.objects.get(person__external_id="ny")
    assert (run.occurs_on.isoformat(), run.send_at) == ("2026-12-07", at("2026-12-07T14:00:00"))
    fired = Event.objects.filter(type="automation.fired")
    assert fired.count() == 3 and Order.objects.get(pk=run.order_id).automation_id == auto.id
    assert ledger_invariant_violations() == []


def test_missed_occurrences_are_caught_up_the_same_local_day_only(tenant, shop):
    auto = automation(shop, send_time="09:00")
    add("kl", timezone="Asia/Kuala_Lumpur", birthday="12-07")
    add("ny", timezone="America/New_York", birthday="12-07")
    # The scheduler was down all of 7 December UTC until 02:00 on the 8th: New York is still on the 7th (21:00),
    # Kuala Lumpur is already on the 8th (10:00).
    automations_tick(now=at("2026-12-08T02:00:00"))
    assert sent_to(auto) == ["ny"]


def test_days_offset_and_send_time(tenant, shop):
    auto = automation(shop, send_time="17:30", days_offset=-1)  # the evening before
    add("ber", timezone="Europe/Berlin", birthday="12-08")
    automations_tick(now=at("2026-12-07T16:29:00"))  # 17:29 in Berlin
    assert sent_to(auto) == []
    automations_tick(now=at("2026-12-07T16:30:00"))
    assert sent_to(auto) == ["ber"]
    assert AutomationRun.objects.get().occurs_on.isoformat() == "2026-12-08"


def test_29_february_falls_on_28_february_in_other_years(tenant, shop):
    auto = automation(shop)
    add("leap", birthday="02-29")
    add("feb28", birthday="02-28")
    automations_tick(now=at("2027-02-28T10:00:00"))
    assert sent_to(auto) == ["feb28", "leap"]
    automations_tick(now=at("2027-03-01T10:00:00"))
    assert sent_to(auto) == ["feb28", "leap"]
    automations_tick(now=at("2028-02-28T10:00:00"))  # a leap year: 29 February comes tomorrow
    assert sent_to(auto) == ["feb28", "feb28", "leap"]
    automations_tick(now=at("2028-02-29T10:00:00"))
    assert sent_to(auto) == ["feb28", "feb28", "leap", "leap"]


def test_dst_days(tenant, shop):
    spring = automation(shop, send_time="02:30")  # 2:30 does not exist in New York on 8 March 2026
    add("ny1", timezone="America/New_York", birthday="03-08")
    automations_tick(now=at("2026-03-08T06:59:00"))  # 01:59 EST
    assert sent_to(spring) == []
    automations_tick(now=at("2026-03-08T07:00:00"))  # 03:00 EDT: the first instant at or after 02:30
    assert sent_to(spring) == ["ny1"]

    autumn = automation(shop, send_time="01:30")  # 1:30 happens twice on 1 November 2026
    add("ny2", timezone="America/New_York", birthday="11-01")
    automations_tick(now=at("2026-11-01T05:30:00"))  # 01:30 EDT
    automations_tick(now=at("2026-11-01T06:30:00"))  # 01:30 EST, again
    assert sent_to(autumn) == ["ny2"]


def test_anniversaries_years_and_audience(tenant, shop):
    anniversary = automation(shop, trigger={"type": "work_anniversary", "years": [1, 5]}, name="Anniversary",
                             audience={"department": ["Sales"]})  # fmt: skip
    welcome = automation(shop, trigger={"type": "work_anniversary", "years": [0]}, name="Welcome")
    certified = automation(shop, trigger={"type": "date_attribute", "attribute": "certified_on"}, name="Cert")
    add("one", hire_date="2025-12-07", department="Sales")
    add("five", hire_date="2021-12-07", department="Sales")
    add("three", hire_date="2023-12-07", department="Sales")
    add("ops", hire_date="2025-12-07", department="Ops")
    add("new", hire_date="2026-12-07")
    add("cert", attributes={"certified_on": "2024-12-07"})
    add("junk", attributes={"certified_on": "soon"})
    automations_tick(now=at("2026-12-07T09:00:00"))
    assert sent_to(anniversary) == ["five", "one"]
    assert sent_to(welcome) == ["new"]
    assert sent_to(certified) == ["cert"]


def test_insufficient_funds_fails_alerts_once_and_retries_the_same_day(
    tenant, shop, settings, django_capture_on_commit_callbacks
):
    from funds.services import low_balance_recipients_set

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    auto = automation(shop, reward={"product_id": str(shop.coffee_usd.id), "amount": "50.00"})
    for index in range(25):  # 25 × 50 = 1,250 USD; the tenant has 1,000
        add(f"p{index:02d}", birthday="12-07")
    low_balance_recipients_set(emails=["finance@example.com"], actor=ACTOR)
    with django_capture_on_commit_callbacks(execute=True):
        automations_tick(now=at("2026-12-07T09:00:00"))
    runs = AutomationRun.objects.order_by("person__external_id")
    assert [r.status for r in runs].count("sent") == 20 and [r.status for r in runs].count("failed") == 5
    failed = runs.filter(status="failed").first()
    assert failed.failure_code == "insufficient_funds" and "USD" in failed.failure_reason
    assert Event.objects.filter(type="automation.failed").count() == 5
    assert [m.subject for m in mail.outbox].count("Automation 'Birthday' could not send a reward") == 1
    with django_capture_on_commit_callbacks(execute=True):
        automations_tick(now=at("2026-12-07T10:00:00"))  # still no money: nothing new, no second alert
    assert AutomationRun.objects.filter(status="sent").count() == 20 and len(mail.outbox) == 1

    funds_deposit(currency="USD", amount="500.00")
    automations_tick(now=at("2026-12-07T11:00:00"))
    assert AutomationRun.objects.filter(status="sent").count() == 25
    assert sent_to(auto) == sorted(f"p{index:02d}" for index in range(25))  # each once
    assert Event.objects.filter(type="automation.failed").count() == 5  # not announced again on retry
    assert ledger_invariant_violations() == []


def test_no_retry_after_the_local_day(tenant, shop):
    auto = automation(shop, reward={"product_id": str(shop.coffee_usd.id), "amount": "50.00"})
    for index in range(21):
        add(f"p{index:02d}", birthday="12-07")
    automations_tick(now=at("2026-12-07T09:00:00"))
    funds_deposit(currency="USD", amount="500.00")
    automations_tick(now=at("2026-12-08T00:30:00"))  # the next day: the birthday is over
    assert len(sent_to(auto)) == 20 and AutomationRun.objects.filter(status="failed").count() == 1


def test_an_activity_honours_send_time_and_days_offset_once(tenant, shop):
    from freezegun import freeze_time

    from people.services import activity_record

    deal = {"type": "activity", "activity_type": "deal.closed"}
    next_morning = automation(shop, trigger=deal, send_time="09:00", days_offset=1)
    same_day = automation(shop, trigger=deal, name="Now", send_time="09:00")  # 09:00 has passed: sent now
    add("rep", timezone="Asia/Kuala_Lumpur")
    with freeze_time("2026-12-07T07:00:00Z"):  # 15:00 in Kuala Lumpur
        for _ in range(2):  # a replay claims nothing more
            body, _ = activity_record(actor=ACTOR, external_id="deal-1", type="deal.closed",
                                      occurred_at=at("2026-12-07T07:00:00"), person_external_id="rep")  # fmt: skip
    assert sorted(fired["send_at"] for fired in body["automations"]) == ["2026-12-07T07:00:00Z", "2026-12-08T01:00:00Z"]
    assert sent_to(same_day) == ["rep"] and sent_to(next_morning) == []
    automations_tick(now=at("2026-12-08T00:59:00"))  # 08:59 the next local day
    assert sent_to(next_morning) == []
    automations_tick(now=at("2026-12-08T01:00:00"))
    automations_tick(now=at("2026-12-08T01:05:00"))
    assert sent_to(next_morning) == ["rep"] and sent_to(same_day) == ["rep"]
