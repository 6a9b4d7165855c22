"""Fulfilment in-process: codes issued once, holds captured or released exactly, email holds the code."""

from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django_tenants.utils import tenant_context

from catalog.models import Supplier
from fulfillment.models import CodeReveal
from fulfillment.services import reward_fulfil
from fulfillment.suppliers import SupplierUnavailable
from funds.models import Hold
from funds.selectors import balance_get, ledger_invariant_violations
from orders.models import Reward
from testsupport.orders import digital_order


def _order(api, product, **reward_overrides):
    body = digital_order(product, "25.00")
    body["rewards"][0].update(reward_overrides)
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    return response.json()


def _configure(product, **behaviour):
    supplier = Supplier.objects.get(pk=product.supplier_id)
    supplier.config = {"products": {str(product.id): behaviour}}
    supplier.save(update_fields=["config"])


def test_email_reward_is_issued_captured_and_emailed(api_a, funded_a, shop):
    order = _order(api_a, shop.coffee_usd)
    reward_id = order["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
        reward = Reward.objects.get(pk=reward_id)
        assert reward.status == "delivered" and reward.delivered_at
        assert reward.hold.status == "captured"
        balance = balance_get(currency="USD")
        assert (balance.posted, balance.held, balance.available) == (Decimal("975"), 0, Decimal("975"))
        assert ledger_invariant_violations() == []
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    html = message.alternatives[0][0]
    shown = api_a.get(f"/api/v1/rewards/{reward_id}").json()
    assert shown["status"] == "delivered"
    assert shown["code"].endswith(reward.code_last4) and shown["code"].startswith("•")
    # the email holds the full code, which the API never shows
    code = api_a.post(f"/api/v1/rewards/{reward_id}/reveal").json()["code"]
    assert code in message.body and code in html and code not in str(shown)
    assert "Thank you!" in message.body
    assert api_a.get(f"/api/v1/orders/{order['id']}").json()["status"] == "completed"


def test_running_fulfil_twice_is_harmless(api_a, funded_a, shop):
    reward_id = _order(api_a, shop.coffee_usd)["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
        code = Reward.objects.get(pk=reward_id).code_encrypted
        assert reward_fulfil(reward_id=reward_id) is None
        assert Reward.objects.get(pk=reward_id).code_encrypted == code
        assert Hold.objects.filter(status="captured").count() == 1
        assert ledger_invariant_violations() == []
    assert len(mail.outbox) == 1


def test_api_reward_reveal_is_audited(api_a, funded_a, shop):
    reward_id = _order(api_a, shop.coffee_usd, delivery_method="api")["rewards"][0]["id"]
    early = api_a.post(f"/api/v1/rewards/{reward_id}/reveal")
    assert early.status_code == 409 and early.json()["code"] == "code_not_available"
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
    assert mail.outbox == []  # api delivery sends nothing
    first = api_a.post(f"/api/v1/rewards/{reward_id}/reveal").json()
    second = api_a.post(f"/api/v1/rewards/{reward_id}/reveal").json()
    assert first == second and len(first["code"]) == 19 and first["pin"]
    with tenant_context(funded_a):
        assert CodeReveal.objects.filter(reward_id=reward_id).count() == 2


def test_reveal_is_404_for_another_tenant(api_a, api_b, funded_a, shop):
    reward_id = _order(api_a, shop.coffee_usd, delivery_method="api")["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
    assert api_b.post(f"/api/v1/rewards/{reward_id}/reveal").status_code == 404


def test_non_retryable_failure_releases_exactly_its_hold(api_a, funded_a, shop):
    _configure(shop.coffee_usd, fail="permanent")
    body = digital_order(shop.coffee_usd, "10")
    body["rewards"].append({**body["rewards"][0], "product_id": str(shop.books_gbp.id), "amount": "20",
                            "currency": "GBP", "country": "GB"})  # fmt: skip
    body["funding_currency"] = "USD"
    order = api_a.post("/api/v1/orders", body).json()
    failing, other = order["rewards"]
    with tenant_context(funded_a):
        assert balance_get(currency="USD").held == Decimal("35.25")  # 10 + 20 GBP x 1.25 + 1 % fee
        reward_fulfil(reward_id=failing["id"])
        reward = Reward.objects.get(pk=failing["id"])
        assert reward.status == "failed" and "rejection" in reward.failure_reason
        assert reward.hold.status == "released"
        balance = balance_get(currency="USD")
        assert (balance.held, balance.available) == (Decimal("25.25"), Decimal("974.75"))
        assert Reward.objects.get(pk=other["id"]).hold.status == "pending"
        assert ledger_invariant_violations() == []


def test_retryable_failure_keeps_the_hold_and_recovers(api_a, funded_a, shop):
    _configure(shop.coffee_usd, fail="retryable", fail_times=2)
    reward_id = _order(api_a, shop.coffee_usd)["rewards"][0]["id"]
    with tenant_context(funded_a):
        for _ in range(2):
            with pytest.raises(SupplierUnavailable):
                reward_fulfil(reward_id=reward_id)
            reward = Reward.objects.get(pk=reward_id)
            assert reward.status == "processing" and reward.hold.status == "pending"
        reward_fulfil(reward_id=reward_id)
        reward = Reward.objects.get(pk=reward_id)
        assert reward.status == "delivered" and reward.attempts == 3 and reward.hold.status == "captured"
        assert ledger_invariant_violations() == []


def test_canceled_while_supplier_was_called_is_not_delivered(api_a, funded_a, shop, monkeypatch):
    from fulfillment import services

    reward_id = _order(api_a, shop.coffee_usd)["rewards"][0]["id"]
    original = services.reward_issue_code

    def issue_then_cancel(*, reward):
        issued = original(reward=reward)
        # a concurrent cancel cannot win while processing: only pending/scheduled rewards cancel
        assert api_a.post(f"/api/v1/rewards/{reward_id}/cancel").status_code == 409
        connection.set_tenant(funded_a)  # the in-process API call left the connection on public
        return issued

    monkeypatch.setattr(services, "reward_issue_code", issue_then_cancel)
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
        assert Reward.objects.get(pk=reward_id).status == "delivered"
        assert ledger_invariant_violations() == []


def test_resend_to_corrected_address(api_a, funded_a, shop, django_capture_on_commit_callbacks):
    reward_id = _order(api_a, shop.coffee_usd)["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
    bad = api_a.post(f"/api/v1/rewards/{reward_id}/resend", {"email": "nope"})
    assert bad.status_code == 422
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_a.post(f"/api/v1/rewards/{reward_id}/resend", {"email": "ada@corrected.example"})
    assert response.status_code == 202 and len(callbacks) == 1
    assert api_a.get(f"/api/v1/rewards/{reward_id}").json()["recipient"]["email"] == "ada@corrected.example"


def test_scheduled_reward_waits_for_its_time(api_a, funded_a, shop):
    from freezegun import freeze_time

    from fulfillment.services import rewards_due

    reward_id = _order(api_a, shop.coffee_usd, deliver_at="2099-01-01T09:00:00Z")["rewards"][0]["id"]
    with tenant_context(funded_a):
        assert reward_fulfil(reward_id=reward_id) is None
        assert reward_id not in rewards_due()
        with freeze_time("2099-01-01T09:00:01Z"):
            assert reward_id in rewards_due()
            reward_fulfil(reward_id=reward_id)
        assert Reward.objects.get(pk=reward_id).status == "delivered"


def test_provider_bounce_marks_delivery_failed_and_resend_recovers(api_a, funded_a, shop):
    import base64
    import json

    from django.test import Client

    reward_id = _order(api_a, shop.coffee_usd)["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
    [message] = mail.outbox
    assert message.metadata == {"reward_id": reward_id, "schema": funded_a.schema_name}
    bounce = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": "ada@example.com",
        "BouncedAt": "2026-11-22T10:00:00Z",
        "Description": "The server was unable to deliver your message",
        "Metadata": message.metadata,
    }
    auth = "Basic " + base64.b64encode(b"provider:webhook-secret").decode()
    url = "/anymail/postmark/tracking/"
    refused = Client().post(url, json.dumps(bounce), content_type="application/json", HTTP_AUTHORIZATION="Basic eDp5")
    assert refused.status_code in (400, 403)
    assert api_a.get(f"/api/v1/rewards/{reward_id}").json()["status"] == "delivered"
    response = Client().post(url, json.dumps(bounce), content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200
    assert api_a.get(f"/api/v1/rewards/{reward_id}").json()["status"] == "delivery_failed"
    # a bounce for something that is not ours is ignored
    stray = {**bounce, "Metadata": {"reward_id": reward_id, "schema": "nope"}}
    assert (
        Client().post(url, json.dumps(stray), content_type="application/json", HTTP_AUTHORIZATION=auth).status_code
        == 200
    )
    from fulfillment.services import reward_deliver

    with tenant_context(funded_a):
        reward_deliver(reward_id=reward_id, to_email="ada@fixed.example")
        assert Reward.objects.get(pk=reward_id).status == "delivered"
        assert ledger_invariant_violations() == []
    assert mail.outbox[-1].to == ["ada@fixed.example"]


class WorkerDied(Exception):
    """Stands for a worker killed after the mail server accepted the email, before the delivery committed."""


def test_a_crash_after_the_send_records_nothing_and_the_retry_records_it_without_a_second_copy(api_a, funded_a, shop):
    from fulfillment import services
    from fulfillment.services import reward_deliver
    from orders.models import RewardEvent
    from webhooks.models import Event

    order = _order(api_a, shop.coffee_usd)
    reward_id = order["rewards"][0]["id"]
    real_refresh = services.order_refresh_status

    def dies_after_the_send(*, order):
        if order.rewards.filter(status="delivered").exists():
            raise WorkerDied
        return real_refresh(order=order)

    with tenant_context(funded_a):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(services, "order_refresh_status", dies_after_the_send)
            with pytest.raises(WorkerDied):
                reward_fulfil(reward_id=reward_id)
        reward = Reward.objects.get(pk=reward_id)
        assert reward.status == "processing"  # sent, but nothing of the delivery recorded but the send's note
        assert not Event.objects.filter(type="reward.delivered", data__id=reward_id).exists()
        Reward.objects.filter(pk=reward_id).update(lease_expires_at=None)  # the dead worker's lease ran out
        reward_fulfil(reward_id=reward_id)  # what the sweeper's re-queued task does
        assert Reward.objects.get(pk=reward_id).status == "delivered"
        assert RewardEvent.objects.filter(reward_id=reward_id, to_status="delivered").count() == 1
        assert Event.objects.filter(type="reward.delivered", data__id=reward_id).count() == 1
        # a worker that lost its lease to the one that delivered it sends nothing more
        assert reward_deliver(reward_id=reward_id, first_delivery=True) is None
        reward_deliver(reward_id=reward_id, send_id="resend-1")  # a requested resend is a new message
        assert ledger_invariant_violations() == []
    assert api_a.get(f"/api/v1/orders/{order['id']}").json()["status"] == "completed"
    first, resent = mail.outbox  # the retry found the note: recorded, not sent again
    assert first.extra_headers["Message-ID"].startswith(f"<reward.{reward_id}@")
    assert resent.extra_headers["Message-ID"].startswith(f"<reward.{reward_id}.resend-1@")
