"""Reminders of unclaimed claim links: on the program's schedule, once each, in the recipient's language, through
the real SMTP sink, stopping when the link is claimed; visible in the reward's timeline in the portal."""

import email
from datetime import timedelta
from email import policy

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context
from freezegun import freeze_time

from fulfillment.models import RewardReminder
from fulfillment.services import reward_fulfil
from fulfillment.tasks import reminders_sweep
from funds.services import funds_deposit
from orders.models import Reward
from programs.models import Program
from programs.services import program_create
from tenants.services import api_key_create
from testsupport.api import ApiClient
from testsupport.catalog import make_shop
from testsupport.orders import link_order
from testsupport.portal import make_staff, portal_client, sign_in
from testsupport.waiting import wait_for

SCHEDULE = {"after_days": [3, 7], "before_expiry_days": [7]}


@pytest.fixture
def smtp(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    return smtp_server


def _link(api, tenant, product, to: str, **recipient) -> Reward:
    body = link_order(product, recipient={"name": "Siti", "email": to, **recipient}) | {"program": "nudges"}
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    reward_id = response.json()["rewards"][0]["id"]
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward_id)
        return Reward.objects.get(pk=reward_id)


def _days_since_sending(tenant, reward: Reward, days: float) -> None:
    """The injected clock: the link went out `days` ago (claim-by 30 days after sending)."""
    sent = timezone.now() - timedelta(days=days)
    with tenant_context(tenant):
        Reward.objects.filter(pk=reward.pk).update(delivered_at=sent, claim_expires_at=sent + timedelta(days=30))


def _reminders_to(smtp, to: str) -> list[email.message.EmailMessage]:
    messages = [email.message_from_string(m["data"], policy=policy.default) for m in smtp.messages if m["to"] == [to]]
    return [m for m in messages if "Reminder" in m["Subject"] or "Peringatan" in m["Subject"]]


def test_reminders_go_out_on_schedule_once_each_and_stop_when_claimed(api_a, funded_a, shop, smtp):
    with tenant_context(funded_a):
        program_create(slug="nudges", name="Nudges", sender_name="Acme People Team", reminders=SCHEDULE)
    to = "siti.reminders@example.com"
    reward = _link(api_a, funded_a, shop.coffee_usd, to)

    _days_since_sending(funded_a, reward, 1)
    assert reminders_sweep() == 0  # nothing due yet
    _days_since_sending(funded_a, reward, 3.1)
    assert reminders_sweep() == 1
    assert reminders_sweep() == 0  # once per entry, however often the sweep runs
    [first] = _reminders_to(smtp, to)
    assert first["Subject"] == "Reminder: Acme People Team sent you a Lumen Coffee gift"
    text = first.get_body(("plain",)).get_content()
    assert "still waiting for you" in text and "/r/" in text

    _days_since_sending(funded_a, reward, 23.5)  # after:7 and before:7 (day 23) are both due: one message
    assert reminders_sweep() == 1
    assert len(_reminders_to(smtp, to)) == 2
    with tenant_context(funded_a):
        rows = dict(RewardReminder.objects.filter(reward=reward).values_list("key", "channel"))
    assert rows == {"after:3": "email", "after:7": "", "before:7": "email"}

    # the timeline in the portal shows each reminder
    staff = make_staff(funded_a, "hr.reminders@alpha.test", "admin")
    portal = portal_client(funded_a)
    sign_in(portal, staff.email)
    timeline = portal.get(f"/rewards/{reward.id}/").content.decode()
    assert timeline.count("reminder sent by email") == 2


def test_claimed_links_and_other_programs_get_no_reminder_and_malay_recipients_read_malay(api_a, funded_a, shop, smtp):
    with tenant_context(funded_a):
        program_create(slug="nudges", name="Nudges", sender_name="Acme People Team", reminders=SCHEDULE)
    claimed = _link(api_a, funded_a, shop.coffee_usd, "claimed@example.com")
    malay = _link(api_a, funded_a, shop.coffee_usd, "malay@example.com", locale="ms")
    token = api_a.get(f"/api/v1/rewards/{claimed.id}").json()["claim_url"].rsplit("/r/", 1)[1]
    assert Client(HTTP_HOST="localhost").post(f"/r/{token}/reveal").status_code == 200
    no_schedule = api_a.post("/api/v1/orders", link_order(shop.coffee_usd)).json()["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=no_schedule)
    for reward in (claimed, malay, Reward(pk=no_schedule)):
        _days_since_sending(funded_a, reward, 3.5)

    assert reminders_sweep() == 1

    assert _reminders_to(smtp, "claimed@example.com") == []
    [message] = _reminders_to(smtp, "malay@example.com")
    assert message["Subject"].startswith("Peringatan")


@pytest.mark.worker
def test_the_beat_task_reminds_through_a_real_worker(committed_tenant, celery_worker_process, smtp_server):
    connection.set_schema_to_public()
    key, raw = api_key_create(tenant=committed_tenant, scopes=["read", "write"])
    shop = make_shop()
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
        program_create(slug="nudges", name="Nudges", sender_name="Acme People Team", reminders=SCHEDULE)
    to = f"worker.{committed_tenant.slug}@example.com"
    reward = _link(ApiClient(raw, key), committed_tenant, shop.coffee_usd, to)
    _days_since_sending(committed_tenant, reward, 3.5)

    reminders_sweep.delay()

    # 90 s: the session's workers may still be busy with an earlier test's work (as in portal/test_send_browser)
    wait_for(lambda: _reminders_to(smtp_server, to), timeout=90, message="no reminder reached the SMTP sink")
    with tenant_context(committed_tenant):
        assert list(RewardReminder.objects.filter(reward=reward).values_list("key", flat=True)) == ["after:3"]


def test_sms_links_are_reminded_by_sms_with_the_claim_by_date(api_a, funded_a, shop, settings):
    from fulfillment.sms import LocmemSmsBackend, get_sms_backend

    settings.SMS_BACKEND = "fulfillment.sms.LocmemSmsBackend"
    get_sms_backend.cache_clear()
    LocmemSmsBackend.outbox.clear()
    with tenant_context(funded_a):
        program_create(slug="nudges", name="Nudges", sender_name="Acme People Team", reminders=SCHEDULE)
    body = link_order(shop.coffee_usd, delivery_method="sms", recipient={"name": "Siti", "phone": "+60123456789"})
    reward_id = api_a.post("/api/v1/orders", body | {"program": "nudges"}).json()["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
    _days_since_sending(funded_a, Reward(pk=reward_id), 3.5)
    LocmemSmsBackend.outbox.clear()

    assert reminders_sweep() == 1

    [message] = LocmemSmsBackend.outbox
    assert message["to"] == "+60123456789" and message["body"].startswith("Reminder: Acme People Team sent you")
    assert "Claim it by" in message["body"] and "/r/" in message["body"]
    get_sms_backend.cache_clear()


@pytest.fixture
def visits(monkeypatch):
    """The schemas the reminders sweep entered (it imports rewards_remind from fulfillment.reminders when it runs)."""
    from fulfillment import reminders

    entered: list[str] = []
    remind = reminders.rewards_remind

    def spying_remind(**kwargs) -> int:
        entered.append(connection.schema_name)
        return remind(**kwargs)

    monkeypatch.setattr(reminders, "rewards_remind", spying_remind)
    return entered


def _reminders_due_at(tenant) -> list:
    from tenants.due import REMINDERS
    from tenants.models import TenantDueEvent

    events = TenantDueEvent.objects.filter(schema_name=tenant.schema_name, kind=REMINDERS)
    return sorted(events.values_list("due_at", flat=True))


def test_the_sweep_enters_a_schema_only_when_its_next_reminder_is_due_and_misses_none(
    api_a, funded_a, tenant_b, shop, smtp, visits
):
    with tenant_context(funded_a):
        program_create(slug="nudges", name="Nudges", sender_name="Acme People Team", reminders=SCHEDULE)
    to = "due.reminders@example.com"
    reward = _link(api_a, funded_a, shop.coffee_usd, to)
    _days_since_sending(funded_a, reward, 3.1)  # a write to a delivered reward: its schema is noted

    assert reminders_sweep() == 1
    assert visits == [funded_a.schema_name]  # beta (no links) and the sandbox twins are not entered
    with tenant_context(funded_a):
        reward.refresh_from_db()
    # The next entry is after:7; the schema is due again then, not before.
    assert _reminders_due_at(funded_a) == [reward.delivered_at + timedelta(days=7)]
    visits.clear()
    assert reminders_sweep() == 0
    assert visits == []

    with freeze_time(reward.delivered_at + timedelta(days=7, minutes=1)):
        assert reminders_sweep() == 1
    assert visits == [funded_a.schema_name]
    assert len(_reminders_to(smtp, to)) == 2
    # before:7 (23 days after sending) is the last entry
    assert _reminders_due_at(funded_a) == [reward.claim_expires_at - timedelta(days=7)]


def test_a_failed_reminder_and_a_changed_schedule_bring_the_sweep_back(
    api_a, funded_a, shop, smtp, visits, monkeypatch
):
    from fulfillment import delivery

    with tenant_context(funded_a):
        program = program_create(slug="nudges", name="Nudges", sender_name="Acme People Team", reminders=SCHEDULE)
    to = "retry.reminders@example.com"
    reward = _link(api_a, funded_a, shop.coffee_usd, to)
    _days_since_sending(funded_a, reward, 3.1)
    send = delivery.mail_send

    def mail_down(message):
        raise ConnectionRefusedError("mail server away")

    monkeypatch.setattr(delivery, "mail_send", mail_down)
    assert reminders_sweep() == 0  # not sent: the entry is still due, so the schema is due at once
    assert _reminders_due_at(funded_a)[0] <= timezone.now()
    monkeypatch.setattr(delivery, "mail_send", send)
    assert reminders_sweep() == 1
    assert len(_reminders_to(smtp, to)) == 1

    with tenant_context(funded_a):
        reward.refresh_from_db()
    visits.clear()
    with freeze_time(reward.delivered_at + timedelta(days=4, minutes=1)):
        assert reminders_sweep() == 0 and visits == []  # the next entry, after:7, is days away
        with tenant_context(funded_a):
            Program.objects.filter(pk=program.pk).update(reminders={"after_days": [1, 3, 4]})
        assert reminders_sweep() == 1  # after:4, due under the new schedule
    assert visits == [funded_a.schema_name]
