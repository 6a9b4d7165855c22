"""Who may say where a gift is: shipment tracking and status come from the fulfilment partner's operator-issued
key or the operator's commands, never from the tenant, whose `returned` report would refund itself."""

from __future__ import annotations

import io
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.test import Client
from django_tenants.utils import tenant_context

from fulfillment.models import Shipment, ShipmentEvent
from fulfillment.services import reward_fulfil
from funds.models import LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from tenants.models import PARTNER_SCOPE, ApiKey
from tenants.services import api_key_create
from testsupport.orders import physical_order
from testsupport.problems import assert_problem
from webhooks.models import Event

HAMPER_COST = Decimal("58.00")  # 50.00 hamper + 8.00 US ground shipping
PROBE = ("shipped", "in_transit", "delivered", "returned")


def _submitted(api, tenant, shop) -> dict[str, str]:
    """A physical order fulfilled: the hamper bought (hold captured) and handed to the partner (`submitted`)."""
    body = physical_order(shop.hamper_usd, shop.ground_us)
    created = api.post("/api/v1/orders", body)
    assert created.status_code == 201, created.content
    reward = api.get(f"/api/v1/orders/{created.json()['id']}").json()["rewards"][0]
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward["id"])
    return {"reward_id": reward["id"], "shipment_id": reward["shipment_id"]}


def _state(tenant, ids) -> tuple:
    """What the tenant would notice: the shipment's status and events, the reward, the money, the webhooks."""
    with tenant_context(tenant):
        shipment = Shipment.objects.select_related("reward").get(pk=ids["shipment_id"])
        usd = balance_get(currency="USD")
        return (
            shipment.status,
            shipment.tracking_number,
            ShipmentEvent.objects.filter(shipment=shipment).count(),
            shipment.reward.status,
            (usd.available, usd.held, usd.posted),
            LedgerTransaction.objects.count(),
            Event.objects.filter(type__startswith="shipment.").count(),
        )


def _refunds(tenant, reward_id) -> list[LedgerTransaction]:
    with tenant_context(tenant):
        return list(LedgerTransaction.objects.filter(kind="refund", reference=f"reward:{reward_id}"))


def _available(tenant) -> Decimal:
    with tenant_context(tenant):
        return balance_get(currency="USD").available


def _assert_books_balance(tenant) -> None:
    with tenant_context(tenant):
        assert ledger_invariant_violations() == []


@pytest.fixture
def partner_a(tenant_a, make_partner_client):
    return make_partner_client(tenant_a)


@pytest.mark.parametrize("scopes", [["read", "write"], ["write"], ["read"]])
def test_a_tenant_key_cannot_report_any_shipment_status(api_a, partner_a, funded_a, shop, make_api_client, scopes):
    """The issue's probe: shipped, in_transit, delivered, returned with the tenant's own key (it refunded 58.00)."""
    ids = _submitted(api_a, funded_a, shop)
    url = f"/api/v1/shipments/{ids['shipment_id']}/tracking"
    tenant = make_api_client(funded_a, scopes=scopes)
    before = _state(funded_a, ids)
    assert before[0] == "submitted" and _available(funded_a) == Decimal("1000") - HAMPER_COST

    for status in PROBE:  # straight through, as the probe did
        problem = assert_problem(tenant.post(url, {"status": status, "tracking_number": "X1"}), 403, "forbidden")
        assert "fulfilment partner" in problem["detail"]
        assert _state(funded_a, ids) == before

    # Nor one step ahead of the partner at each stage: the partner moves it, the tenant's next report is refused.
    for status in PROBE:
        before = _state(funded_a, ids)
        assert_problem(tenant.post(url, {"status": status}), 403, "forbidden")
        assert _state(funded_a, ids) == before
        if status != "returned":
            assert partner_a.post(url, {"status": status}).status_code == 200
    assert _state(funded_a, ids)[0] == "delivered"
    assert _refunds(funded_a, ids["reward_id"]) == []
    assert tenant.get(f"/api/v1/shipments/{ids['shipment_id']}").status_code == (
        200 if "read" in scopes else 403
    )  # the tenant reads its shipments as before
    _assert_books_balance(funded_a)


def test_an_access_token_of_a_tenant_key_cannot_report_either(api_a, funded_a, shop):
    ids = _submitted(api_a, funded_a, shop)
    exchanged = Client().post(
        "/api/v1/tokens",
        urlencode({"grant_type": "client_credentials", "client_id": api_a.key.key_id, "client_secret": api_a.raw_key}),
        content_type="application/x-www-form-urlencoded",  # RFC 6749's form
    )
    assert exchanged.status_code == 200, exchanged.content
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {exchanged.json()['access_token']}")
    before = _state(funded_a, ids)
    response = bearer.post(
        f"/api/v1/shipments/{ids['shipment_id']}/tracking", {"status": "shipped"}, content_type="application/json"
    )
    assert_problem(response, 403, "forbidden")
    assert _state(funded_a, ids) == before


def test_the_partner_reports_and_a_return_refunds_exactly_once(api_a, partner_a, funded_a, shop):
    ids = _submitted(api_a, funded_a, shop)
    url = f"/api/v1/shipments/{ids['shipment_id']}/tracking"
    for status in ("shipped", "in_transit", "delivered"):
        response = partner_a.post(url, {"status": status, "tracking_number": "PW123456789US"})
        assert response.status_code == 200, response.content
        assert response.json()["status"] == status
    assert _available(funded_a) == Decimal("1000") - HAMPER_COST

    returned = partner_a.post(url, {"status": "returned", "description": "Refused by recipient"})
    assert returned.status_code == 200 and returned.json()["status"] == "returned"
    for _ in range(3):  # the partner retries the same report: nothing more happens
        again = partner_a.post(url, {"status": "returned", "description": "Refused by recipient"})
        assert again.status_code == 200 and again.json()["status"] == "returned"

    [refund] = _refunds(funded_a, ids["reward_id"])
    assert refund.amount == HAMPER_COST
    assert _available(funded_a) == Decimal("1000")
    reward = api_a.get(f"/api/v1/rewards/{ids['reward_id']}").json()
    assert reward["status"] == "canceled" and reward["failure_reason"] == "returned to sender"
    shipment = api_a.get(f"/api/v1/shipments/{ids['shipment_id']}").json()  # the tenant reads the outcome
    assert [e["status"] for e in shipment["events"]] == ["submitted", "shipped", "in_transit", "delivered", "returned"]
    _assert_books_balance(funded_a)


def test_the_partner_key_reaches_nothing_but_shipments(api_a, partner_a, funded_a, shop):
    ids = _submitted(api_a, funded_a, shop)
    rewards = api_a.get("/api/v1/rewards").json()["results"]
    reward_id = rewards[0]["id"]
    order_id = rewards[0]["order_id"]
    before = _state(funded_a, ids)
    refused = [
        partner_a.get("/api/v1/orders"),
        partner_a.get(f"/api/v1/orders/{order_id}"),
        partner_a.get("/api/v1/rewards"),
        partner_a.get(f"/api/v1/rewards/{reward_id}"),
        partner_a.get("/api/v1/balances"),
        partner_a.get("/api/v1/transactions"),
        partner_a.get("/api/v1/products"),
        partner_a.get("/api/v1/webhook-endpoints"),
        partner_a.post("/api/v1/orders", {"type": "physical", "rewards": []}),
        partner_a.post(f"/api/v1/orders/{order_id}/cancel", {}),
        partner_a.post(f"/api/v1/rewards/{reward_id}/cancel", {}),
        partner_a.post(f"/api/v1/rewards/{reward_id}/reveal", {}),
        partner_a.post(f"/api/v1/rewards/{reward_id}/resend", {}),
        partner_a.post("/api/v1/webhook-endpoints", {"url": "https://example.com/hook"}),
    ]
    for response in refused:
        assert_problem(response, 403, "forbidden")
    assert _state(funded_a, ids) == before
    assert partner_a.get(f"/api/v1/shipments/{ids['shipment_id']}").status_code == 200


def test_only_the_operator_issues_partner_keys(tenant_a):
    """Tenant-facing key creation (portal, API, rotation, which copies scopes) can never grant the partner scope."""
    from core.errors import ApplicationError

    for scopes in ([PARTNER_SCOPE], ["read", PARTNER_SCOPE], ["write", PARTNER_SCOPE]):
        with pytest.raises(ApplicationError) as refused:
            api_key_create(tenant=tenant_a, scopes=scopes)
        assert refused.value.code == "validation_error"
    assert not ApiKey.objects.filter(scopes__contains=[PARTNER_SCOPE]).exists()

    out, err = io.StringIO(), io.StringIO()
    call_command("partner_key_create", "alpha", "--name", "ShipCo", "--sandbox", stdout=out, stderr=err)
    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("rp_test_") and raw not in err.getvalue()
    key = ApiKey.objects.get(key_id=raw.split("_")[2])
    assert (key.tenant, key.name, key.scopes, key.is_partner) == (tenant_a.sandbox, "ShipCo", [PARTNER_SCOPE], True)

    for args in (
        ("nobody", "--name", "ShipCo"),
        ("alpha", "--name", "  "),
        ("alpha", "--name", "X", "--allow-cidr", "x"),
    ):
        with pytest.raises(CommandError):
            call_command("partner_key_create", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert ApiKey.objects.filter(scopes__contains=[PARTNER_SCOPE]).count() == 1

    # Even a hand-made row cannot mix the partner's scope with a tenant's (a database constraint).
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(key_id="mixed0000000", tenant=tenant_a, key_hash="0" * 64, last4="0000",
                              scopes=["read", PARTNER_SCOPE])  # fmt: skip


def test_operator_report_command_goes_through_the_same_path(api_a, funded_a, shop):
    ids = _submitted(api_a, funded_a, shop)
    shipment_id = ids["shipment_id"]

    def report(*args):
        out = io.StringIO()
        call_command("shipment_report", "alpha", shipment_id, *args, stdout=out, stderr=io.StringIO())
        return out.getvalue().strip()

    assert report("shipped", "--tracking-number", "PW9", "--location", "Reno, NV") == "shipped changed"
    assert report("shipped", "--tracking-number", "PW9") == "shipped unchanged"
    before = _state(funded_a, ids)
    for bad in (("delivered", "--occurred-at", "next tuesday"), ("lost",), ("submitted",)):
        with pytest.raises(CommandError) as refused:
            report(*bad)
        assert refused.value.returncode == 2
    with pytest.raises(CommandError) as refused:  # the sandbox twin has no such shipment
        call_command("shipment_report", "alpha", shipment_id, "in_transit", "--sandbox", stdout=io.StringIO())
    assert "No such shipment" in str(refused.value)
    assert _state(funded_a, ids) == before

    assert report("returned", "--description", "Refused by recipient") == "returned changed"
    assert report("returned") == "returned unchanged"
    assert len(_refunds(funded_a, ids["reward_id"])) == 1 and _available(funded_a) == Decimal("1000")
    with tenant_context(funded_a):
        shipment = Shipment.objects.get(pk=shipment_id)
        assert (shipment.status, shipment.tracking_number) == ("returned", "PW9")
    _assert_books_balance(funded_a)


def test_the_api_schema_says_the_tracking_callback_is_partner_only(client):
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/shipments/{shipment_id}/tracking"]["post"]
    assert "partner" in operation["summary"].lower()
    assert "Fulfilment partners only" in operation["description"] and "403" in operation["responses"]
    assert "tenant keys never report" in operation["responses"]["403"]["description"]
