"""Cancel after issue: a disclosed code is spent; money comes back only for a code the supplier voided.

The walk at the end puts a real reward in every state x delivery method x disclosed, asks to cancel it, and
checks the answer against orders.policy and the ledger after each attempt.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from catalog.models import Supplier
from core.errors import ApplicationError
from fulfillment.services import reward_fulfil
from funds.models import HoldStatus, LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from orders.lifecycle import reward_cancel
from orders.models import DeliveryMethod, Reward, RewardStatus
from orders.policy import CANCEL_POLICY, CancelAction, CodeState, cancel_rule, code_state
from testsupport.orders import digital_order, physical_order


def _balance(tenant) -> tuple[Decimal, Decimal]:
    with tenant_context(tenant):
        balance = balance_get(currency="USD")
        return balance.available, balance.held


def _order(api, product, *, order_type="digital", method="email", amount="50.00") -> dict:
    body = digital_order(product, amount, type=order_type)
    reward = body["rewards"][0]
    reward["delivery_method"] = method
    if method == "sms":
        reward["recipient"]["phone"] = "+14155550123"
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    return response.json()["rewards"][0]


def _sandbox(product, **config) -> None:
    supplier = Supplier.objects.get(pk=product.supplier_id)
    supplier.config = {**(supplier.config or {}), **config}
    supplier.save(update_fields=["config"])


def _refunds(reward_id) -> int:
    return LedgerTransaction.objects.filter(kind="refund", reference=f"reward:{reward_id}").count()


def test_revealed_link_code_is_voided_before_its_refund_and_never_reveals_again(api_a, funded_a, shop):
    """The probe of the issue: link reward, delivered, revealed, canceled."""
    reward = _order(api_a, shop.coffee_usd, order_type="link", method="link")
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward["id"])
    revealed = api_a.post(f"/api/v1/rewards/{reward['id']}/reveal")
    assert revealed.status_code == 200 and revealed.json()["code"]
    assert _balance(funded_a) == (Decimal("950"), 0)

    canceled = api_a.post(f"/api/v1/rewards/{reward['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert _balance(funded_a) == (Decimal("1000"), 0)  # refunded only because the sandbox confirmed the void
    again = api_a.post(f"/api/v1/rewards/{reward['id']}/reveal")
    assert again.status_code == 409 and again.json()["code"] == "reward_canceled"
    with tenant_context(funded_a):
        stored = Reward.objects.get(pk=reward["id"])
        assert stored.code_voided_at and not stored.code_encrypted and not stored.pin_encrypted
        assert _refunds(reward["id"]) == 1 and ledger_invariant_violations() == []
    again = api_a.post(f"/api/v1/rewards/{reward['id']}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "not_cancelable"
    assert _balance(funded_a) == (Decimal("1000"), 0)


def test_revealed_code_the_supplier_cannot_void_is_not_refunded(api_a, funded_a, shop):
    reward = _order(api_a, shop.coffee_usd, order_type="link", method="link")
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward["id"])
    code = api_a.post(f"/api/v1/rewards/{reward['id']}/reveal").json()["code"]
    _sandbox(shop.coffee_usd, void="refuse")

    refused = api_a.post(f"/api/v1/rewards/{reward['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["code"] == "reward_redeemed"
    assert "void" in refused.json()["detail"]
    assert _balance(funded_a) == (Decimal("950"), 0)
    assert api_a.post(f"/api/v1/rewards/{reward['id']}/reveal").json()["code"] == code  # still the tenant's card
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward["id"]).status == "delivered"
        assert _refunds(reward["id"]) == 0 and ledger_invariant_violations() == []


def test_supplier_unreachable_during_void_changes_nothing_and_says_retry(api_a, funded_a, shop):
    reward = _order(api_a, shop.coffee_usd, method="api")
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward["id"])
    _sandbox(shop.coffee_usd, void="unavailable")
    response = api_a.post(f"/api/v1/rewards/{reward['id']}/cancel")
    assert response.status_code == 503 and response.json()["code"] == "supplier_unavailable"
    assert response.json()["retryable"] is True
    assert _balance(funded_a) == (Decimal("950"), 0)
    _sandbox(shop.coffee_usd, void=None)
    assert api_a.post(f"/api/v1/rewards/{reward['id']}/cancel").json()["status"] == "canceled"
    assert _balance(funded_a) == (Decimal("1000"), 0)


def test_emailed_code_counts_as_disclosed(api_a, funded_a, shop):
    reward = _order(api_a, shop.coffee_usd, method="email")
    api_reward = _order(api_a, shop.coffee_usd, method="api")
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward["id"])
        reward_fulfil(reward_id=api_reward["id"])
        assert Reward.objects.get(pk=reward["id"]).code_disclosed_at is not None  # the email carried it
        assert Reward.objects.get(pk=api_reward["id"]).code_disclosed_at is None  # nobody has seen it yet
    api_a.post(f"/api/v1/rewards/{api_reward['id']}/reveal")
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=api_reward["id"]).code_disclosed_at is not None


def test_order_cancel_leaves_issued_codes_alone(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "10.00")
    body["rewards"].append(
        {**body["rewards"][0], "deliver_at": (timezone.now() + timezone.timedelta(days=1)).isoformat()}
    )
    order = api_a.post("/api/v1/orders", body).json()
    issued, scheduled = order["rewards"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=issued["id"])
    canceled = api_a.post(f"/api/v1/orders/{order['id']}/cancel")
    assert canceled.status_code == 200
    statuses = {r["id"]: r["status"] for r in canceled.json()["rewards"]}
    assert statuses == {issued["id"]: "delivered", scheduled["id"]: "canceled"}
    assert _balance(funded_a) == (Decimal("990"), 0)
    refused = api_a.post(f"/api/v1/orders/{order['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["code"] == "not_cancelable"


def test_read_key_never_sees_claim_links_and_responses_are_not_stored(api_a, make_api_client, funded_a, shop):
    reader = make_api_client(funded_a, scopes=["read"])
    link_body = digital_order(shop.coffee_usd, type="link")
    link_body["rewards"][0]["delivery_method"] = "link"
    created = api_a.post("/api/v1/orders", link_body)
    assert created.status_code == 201 and created.json()["rewards"][0]["claim_url"]
    assert created["Cache-Control"] == "no-store"
    order_id, reward_id = created.json()["id"], created.json()["rewards"][0]["id"]
    for path in (f"/api/v1/rewards/{reward_id}", f"/api/v1/orders/{order_id}", "/api/v1/rewards", "/api/v1/orders"):
        as_reader = reader.get(path)
        assert as_reader.status_code == 200 and "/r/" not in as_reader.content.decode(), path
        assert as_reader["Cache-Control"] == "no-store"
        assert "/r/" in api_a.get(path).content.decode(), path  # a write key may send, so it may see the link
    assert reader.post(f"/api/v1/rewards/{reward_id}/reveal").status_code == 403


def test_control_characters_are_refused_at_the_door(api_a, funded_a, shop):
    for field, value in (
        ("sender_name", "Bob\r\nBcc: x@evil.example"),
        ("sender_name", "PayPal\u202eyticuritas"),
        ("message", "Hi\x1bthere"),
    ):
        body = digital_order(shop.coffee_usd)
        body["rewards"][0][field] = value
        response = api_a.post("/api/v1/orders", body)
        assert response.status_code == 422, (field, value)
        assert list(response.json()["errors"]) == [f"rewards[0].{field}"]
    body = digital_order(shop.coffee_usd)
    body["rewards"][0]["recipient"]["name"] = "Ada\nLovelace"
    assert list(api_a.post("/api/v1/orders", body).json()["errors"]) == ["rewards[0].recipient.name"]
    body["rewards"][0]["recipient"]["name"] = "Ada Lovelace"
    body["rewards"][0]["message"] = "Thank you!\nSee you Monday.\tCheers"
    assert api_a.post("/api/v1/orders", body).status_code == 201  # a message may have lines and tabs
    assert _balance(funded_a) == (Decimal("975"), Decimal("25"))


def test_an_exception_after_the_capture_ends_in_delivery_failed_not_processing(api_a, funded_a, shop, monkeypatch):
    """Whatever slips past the door (here a template that breaks) must not strand a paid reward."""
    reward = _order(api_a, shop.coffee_usd, method="email")

    def broken(**kwargs):
        raise ValueError("template exploded")

    monkeypatch.setattr("fulfillment.delivery.send_reward_email", broken)
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward["id"])
        stored = Reward.objects.get(pk=reward["id"])
        assert stored.status == "delivery_failed" and "ValueError" in stored.failure_reason
        assert stored.code_disclosed_at is None and stored.hold.status == HoldStatus.CAPTURED
    canceled = api_a.post(f"/api/v1/rewards/{reward['id']}/cancel")  # never sent: the sandbox voids, refund
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert _balance(funded_a) == (Decimal("1000"), 0)
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == []


def test_the_sweeper_gives_up_after_the_bounded_attempts(api_a, funded_a, shop, settings):
    settings.FULFILMENT_MAX_ATTEMPTS = 3
    paid = _order(api_a, shop.coffee_usd, method="email")
    never_issued = _order(api_a, shop.coffee_usd, method="email")
    with tenant_context(funded_a):
        Reward.objects.filter(pk__in=[paid["id"], never_issued["id"]]).update(attempts=3)
        reward = Reward.objects.select_related("hold", "order").get(pk=paid["id"])
        from orders.lifecycle import reward_capture, reward_transition

        reward_transition(reward=reward, to="processing")
        reward_capture(reward=reward)
        Reward.objects.filter(pk=paid["id"]).update(lease_expires_at=timezone.now())
        assert reward_fulfil(reward_id=paid["id"]) is None
        assert reward_fulfil(reward_id=never_issued["id"]) is None
        gave_up = Reward.objects.get(pk=paid["id"])
        assert gave_up.status == "delivery_failed" and "gave up after 3 attempts" in gave_up.failure_reason
        failed = Reward.objects.get(pk=never_issued["id"])
        assert failed.status == "failed" and failed.hold.status == HoldStatus.RELEASED
        assert ledger_invariant_violations() == []
    assert _balance(funded_a) == (Decimal("950"), 0)


# --- the whole table ----------------------------------------------------------------------------------

METHODS = [DeliveryMethod.EMAIL, DeliveryMethod.SMS, DeliveryMethod.API, DeliveryMethod.LINK]
ISSUED_STATES = [
    RewardStatus.DELIVERED,
    RewardStatus.DELIVERY_FAILED,
    RewardStatus.OPENED,
    RewardStatus.REDEEMED,
    RewardStatus.EXPIRED,
    RewardStatus.PROCESSING,
]


def _put_in_state(api, tenant, product, *, status: str, method: str, disclosed: bool) -> Reward:
    """A real order, fulfilled by the real worker path, then moved to `status` / disclosure for the walk."""
    order_type = "link" if method == DeliveryMethod.LINK else "digital"
    created = _order(api, product, order_type=order_type, method=method, amount="10.00")
    with tenant_context(tenant):
        if status not in (RewardStatus.PENDING, RewardStatus.SCHEDULED):
            reward_fulfil(reward_id=created["id"])
        Reward.objects.filter(pk=created["id"]).update(
            status=status,
            code_disclosed_at=timezone.now() if disclosed else None,
            deliver_at=timezone.now() + timezone.timedelta(days=1) if status == RewardStatus.SCHEDULED else None,
        )
        return Reward.objects.select_related("hold").get(pk=created["id"])


WALK = [
    (status, method, disclosed)
    for status, method, disclosed in itertools.product(
        [RewardStatus.PENDING, RewardStatus.SCHEDULED, *ISSUED_STATES, RewardStatus.FAILED, RewardStatus.CANCELED],
        METHODS,
        [False, True],
    )
    if not (status in (RewardStatus.PENDING, RewardStatus.SCHEDULED) and disclosed)  # no code to disclose yet
]


@pytest.mark.parametrize("refused", [False, True], ids=["void-confirmed", "void-refused"])
def test_every_state_method_and_disclosure_follows_the_policy_table(api_a, funded_a, shop, refused):
    if refused:
        _sandbox(shop.coffee_usd, void="refuse")
    seen = set()
    for status, method, disclosed in WALK:
        reward = _put_in_state(api_a, funded_a, shop.coffee_usd, status=status, method=method, disclosed=disclosed)
        with tenant_context(funded_a):
            rule = cancel_rule(reward)
            assert rule is CANCEL_POLICY[status][code_state(reward)]
            seen.add((status, code_state(reward)))
            before = balance_get(currency="USD")
            hold_status = reward.hold.status
            label = f"{status}/{method}/disclosed={disclosed}"
            try:
                reward_cancel(reward_id=reward.id)
                outcome = None
            except ApplicationError as exc:
                outcome = exc
            after = balance_get(currency="USD")
            stored = Reward.objects.select_related("hold").get(pk=reward.id)
            expect_cancel = rule.action in (CancelAction.RELEASE, CancelAction.REFUND) or (
                rule.action == CancelAction.VOID_THEN_REFUND and not refused
            )
            if expect_cancel:
                assert outcome is None, (label, outcome)
                assert stored.status == "canceled", label
                if hold_status == HoldStatus.PENDING:
                    assert stored.hold.status == HoldStatus.RELEASED, label
                    assert after.available - before.available == Decimal("10"), label
                else:
                    assert _refunds(reward.id) == 1, label
                    assert after.available - before.available == Decimal("10"), label
                if rule.action == CancelAction.VOID_THEN_REFUND:
                    assert stored.code_voided_at and not stored.code_encrypted, label
            else:
                assert outcome is not None and outcome.status == 409 and outcome.code == rule.code, label
                assert stored.status == status and _refunds(reward.id) == 0, label
                assert (after.available, after.held) == (before.available, before.held), label
                if stored.code_encrypted:
                    assert stored.code_voided_at is None, label
            # Asking again is refused and never moves money a second time.
            with pytest.raises(ApplicationError):
                reward_cancel(reward_id=reward.id)
            assert balance_get(currency="USD").available == after.available, label
            assert ledger_invariant_violations() == [], label
    assert seen >= {
        (RewardStatus.DELIVERED, CodeState.UNDISCLOSED),
        (RewardStatus.DELIVERED, CodeState.DISCLOSED),
        (RewardStatus.REDEEMED, CodeState.DISCLOSED),
        (RewardStatus.PENDING, CodeState.NONE),
        (RewardStatus.PROCESSING, CodeState.DISCLOSED),
    }


def test_a_sender_name_stored_with_a_newline_still_sends_a_clean_subject(api_a, funded_a, shop, mailoutbox):
    """Rows written before the door refused control characters are delivered, their headers made safe."""
    reward = _order(api_a, shop.coffee_usd, method="email")
    with tenant_context(funded_a):
        Reward.objects.filter(pk=reward["id"]).update(sender_name="Bob\r\nBcc: x@evil.example")
        reward_fulfil(reward_id=reward["id"])
        assert Reward.objects.get(pk=reward["id"]).status == "delivered"
    [message] = mailoutbox
    assert message.subject.startswith("Bob Bcc: x@evil.example sent you") and "\n" not in message.subject
    assert message.bcc == [] and "Bcc" not in str(message.message()["Bcc"] or "")


def test_a_physical_gift_with_the_partner_is_refused_for_good_not_retryable(api_a, funded_a, shop):
    body = physical_order(shop.hamper_usd, shop.ground_us)
    created = api_a.post("/api/v1/orders", body)
    assert created.status_code == 201, created.content
    reward_id = created.json()["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)  # handed to the partner: the reward stays processing
        assert Reward.objects.get(pk=reward_id).status == "processing"
    refused = api_a.post(f"/api/v1/rewards/{reward_id}/cancel")
    assert refused.status_code == 409 and refused.json()["code"] == "not_cancelable"
    assert refused.json()["retryable"] is False and "fulfilment partner" in refused.json()["detail"]


def test_amounts_in_other_scripts_exponents_and_floats_are_refused(api_a, funded_a, shop):
    for amount in ("٢٥", "２５", "1e2", "2.5e1", 25.0, "25,00", "NaN", " "):
        body = digital_order(shop.coffee_usd)
        body["rewards"][0]["amount"] = amount
        response = api_a.post("/api/v1/orders", body)
        assert response.status_code == 422, (amount, response.content)
        assert "Decimal(" not in response.content.decode()
    body = digital_order(shop.coffee_usd)
    body["rewards"][0]["amount"] = 25  # a JSON integer is an amount too
    assert api_a.post("/api/v1/orders", body).status_code == 201
    assert _balance(funded_a) == (Decimal("975"), Decimal("25"))


def test_order_events_never_carry_claim_links(api_a, make_api_client, funded_a, shop):
    reader = make_api_client(funded_a, scopes=["read"])
    body = digital_order(shop.coffee_usd, type="link")
    body["rewards"][0]["delivery_method"] = "link"
    created = api_a.post("/api/v1/orders", body)
    assert created.json()["rewards"][0]["claim_url"]  # the placing key gets it, once, in the response
    events = reader.get("/api/v1/events").json()["results"]
    assert any(event["type"] == "order.created" for event in events)
    assert "/r/" not in json.dumps(events)
