"""Physical shipments: the state machine and the reward it drives, the partner's manifest, tracking updates
(CSV import and the API callback with the fulfilment partner's key), the return policy's money, and tenant
isolation. Who may report (partner keys only, never a tenant's) is in test_partner_reports.py."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import tenant_context

from core.errors import ApplicationError
from fulfillment.manifests import MANIFEST_COLUMNS, shipment_manifest
from fulfillment.models import Shipment, ShipmentEvent
from fulfillment.services import reward_fulfil
from fulfillment.shipments import shipment_tracking_import, shipment_tracking_update, shipment_transition
from funds.models import LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from orders.models import Order, Reward
from testsupport.exports import csv_export_rows
from testsupport.orders import US_ADDRESS
from testsupport.problems import assert_problem
from webhooks.models import Event

HAMPER_COST = Decimal("58")  # 50.00 hamper + 8.00 US ground shipping


@pytest.fixture
def partner_a(tenant_a, make_partner_client):
    """Tenant A's fulfilment partner: the only API credential that reports tracking."""
    return make_partner_client(tenant_a)


def _order(api, shop, *, address=None, product=None, method=None, amount="50.00", external_id=None):
    product = product or shop.hamper_usd
    body = {
        "type": "physical",
        "rewards": [
            {
                "product_id": str(product.id),
                "amount": amount,
                "recipient": {"name": "Grace Hopper", "email": "grace@example.com"},
                "shipping_address": address or US_ADDRESS,
                "shipping_method_id": str((method or shop.ground_us).id),
            }
        ],
    }
    if external_id:
        body["external_id"] = external_id
    created = api.post("/api/v1/orders", body)
    assert created.status_code == 201, created.content
    order = api.get(f"/api/v1/orders/{created.json()['id']}").json()
    reward = order["rewards"][0]
    return {"order_id": order["id"], "reward_id": reward["id"], "shipment_id": reward["shipment_id"]}


def _submitted(api, tenant, shop, **options):
    """A physical order fulfilled: hold captured, shipment handed to fulfilment (`submitted`)."""
    ids = _order(api, shop, **options)
    with tenant_context(tenant):
        reward_fulfil(reward_id=ids["reward_id"])
    return ids


def _events(tenant, prefix="shipment."):
    with tenant_context(tenant):
        return list(Event.objects.filter(type__startswith=prefix).order_by("created_at", "id"))


def _usd(tenant):
    with tenant_context(tenant):
        return balance_get(currency="USD")


def _refunds(tenant, reward_id):
    with tenant_context(tenant):
        return list(LedgerTransaction.objects.filter(kind="refund", reference=f"reward:{reward_id}"))


def _assert_books_balance(tenant):
    with tenant_context(tenant):
        assert ledger_invariant_violations() == []


def test_full_lifecycle_over_the_partner_callback(api_a, partner_a, funded_a, shop):
    ids = _submitted(api_a, funded_a, shop, external_id="hris-7")
    url = f"/api/v1/shipments/{ids['shipment_id']}"
    shipment = api_a.get(url).json()
    assert shipment["status"] == "submitted" and [e["status"] for e in shipment["events"]] == ["submitted"]
    assert api_a.get(f"/api/v1/rewards/{ids['reward_id']}").json()["status"] == "processing"
    usd = _usd(funded_a)
    assert (usd.available, usd.held) == (Decimal("1000") - HAMPER_COST, 0)  # captured when handed over

    base = timezone.now().replace(microsecond=0)
    shipped = partner_a.post(
        f"{url}/tracking",
        {
            "status": "shipped",
            "tracking_number": "PW123456789US",
            "description": "Picked up",
            "location": "Reno, NV",
            "occurred_at": (base + timedelta(seconds=1)).isoformat(),
        },
    )
    assert shipped.status_code == 200, shipped.content
    assert shipped.json()["status"] == "shipped" and shipped.json()["tracking_number"] == "PW123456789US"
    assert api_a.get(f"/api/v1/rewards/{ids['reward_id']}").json()["status"] == "processing"
    assert api_a.get(f"/api/v1/orders/{ids['order_id']}").json()["status"] == "processing"

    later = (base + timedelta(seconds=2)).isoformat()
    moving = partner_a.post(f"{url}/tracking", {"status": "in_transit", "location": "Denver, CO", "occurred_at": later})
    assert moving.status_code == 200 and moving.json()["status"] == "in_transit"
    delivered = partner_a.post(
        f"{url}/tracking",
        {
            "status": "delivered",
            "description": "Left at front door",
            "location": "Arlington, VA",
            "occurred_at": (base + timedelta(seconds=3)).isoformat(),
        },
    )
    assert delivered.status_code == 200, delivered.content

    shipment = api_a.get(url).json()
    assert shipment["status"] == "delivered"
    assert shipment["carrier"] == "Parcelway" and shipment["tracking_number"] == "PW123456789US"
    assert [e["status"] for e in shipment["events"]] == ["submitted", "shipped", "in_transit", "delivered"]
    assert shipment["events"][1] == {
        "status": "shipped",
        "description": "Picked up",
        "location": "Reno, NV",
        "occurred_at": (base + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
    }
    assert shipment["events"][3]["description"] == "Left at front door"
    reward = api_a.get(f"/api/v1/rewards/{ids['reward_id']}").json()
    assert reward["status"] == "delivered" and reward["delivered_at"]
    assert api_a.get(f"/api/v1/orders/{ids['order_id']}").json()["status"] == "completed"

    events = _events(funded_a)
    assert [e.type for e in events] == ["shipment.shipped", "shipment.delivered"]
    assert events[0].data["status"] == "shipped" and events[0].data["tracking_number"] == "PW123456789US"
    assert events[1].data["id"] == ids["shipment_id"] and events[1].data["status"] == "delivered"
    assert len(events[1].data["events"]) == 4
    assert {e.type for e in _events(funded_a, "reward.")} == {"reward.delivered"}
    assert [e.type for e in _events(funded_a, "order.completed")] == ["order.completed"]
    assert _refunds(funded_a, ids["reward_id"]) == []
    _assert_books_balance(funded_a)


def test_returned_after_delivery_refunds_exactly_once(api_a, partner_a, funded_a, shop):
    ids = _submitted(api_a, funded_a, shop)
    url = f"/api/v1/shipments/{ids['shipment_id']}/tracking"
    for status in ("shipped", "delivered"):
        assert partner_a.post(url, {"status": status}).status_code == 200
    assert _usd(funded_a).available == Decimal("1000") - HAMPER_COST

    first = partner_a.post(url, {"status": "returned", "description": "Refused by recipient"})
    assert first.status_code == 200 and first.json()["status"] == "returned"
    again = partner_a.post(url, {"status": "returned", "description": "Refused by recipient"})  # the partner retries
    assert again.status_code == 200
    with tenant_context(funded_a):  # and an operator reports it once more, straight to the service
        shipment_transition(shipment=Shipment.objects.get(pk=ids["shipment_id"]), to="returned")

    [refund] = _refunds(funded_a, ids["reward_id"])
    assert refund.amount == HAMPER_COST and refund.currency == "USD"
    usd = _usd(funded_a)
    assert (usd.available, usd.held, usd.posted) == (Decimal("1000"), 0, Decimal("1000"))
    reward = api_a.get(f"/api/v1/rewards/{ids['reward_id']}").json()
    assert reward["status"] == "canceled" and reward["failure_reason"] == "returned to sender"
    assert api_a.get(f"/api/v1/orders/{ids['order_id']}").json()["status"] == "canceled"
    assert [e.type for e in _events(funded_a)] == ["shipment.shipped", "shipment.delivered", "shipment.returned"]
    with tenant_context(funded_a):
        assert ShipmentEvent.objects.filter(shipment_id=ids["shipment_id"], status="returned").count() == 1
    _assert_books_balance(funded_a)


def test_returned_in_transit_fails_the_reward_and_refunds(api_a, funded_a, shop):
    ids = _submitted(api_a, funded_a, shop)
    with tenant_context(funded_a):
        for status in ("shipped", "in_transit", "exception", "returned", "returned"):
            shipment_tracking_update(shipment_id=ids["shipment_id"], status=status, description="Address unknown")
        reward = Reward.objects.get(pk=ids["reward_id"])
        assert reward.status == "failed" and reward.failure_reason == "returned to sender"
        assert Order.objects.get(pk=ids["order_id"]).status == "failed"
    assert len(_refunds(funded_a, ids["reward_id"])) == 1
    assert _usd(funded_a).available == Decimal("1000")
    _assert_books_balance(funded_a)


def test_keep_policy_moves_no_money(api_a, funded_a, shop, settings):
    settings.SHIPMENT_RETURN_POLICY = "keep"
    ids = _submitted(api_a, funded_a, shop)
    with tenant_context(funded_a):
        for status in ("shipped", "returned"):
            shipment_tracking_update(shipment_id=ids["shipment_id"], status=status)
        assert Reward.objects.get(pk=ids["reward_id"]).status == "failed"
    assert _refunds(funded_a, ids["reward_id"]) == []
    usd = _usd(funded_a)
    assert (usd.available, usd.held) == (Decimal("1000") - HAMPER_COST, 0)
    assert [e.type for e in _events(funded_a)] == ["shipment.shipped", "shipment.returned"]
    _assert_books_balance(funded_a)


def test_illegal_transitions_are_refused_and_change_nothing(api_a, partner_a, funded_a, shop):
    pending = _order(api_a, shop)  # not yet handed to fulfilment
    ids = _submitted(api_a, funded_a, shop)
    url = f"/api/v1/shipments/{ids['shipment_id']}"

    problem = assert_problem(
        partner_a.post(f"{url}/tracking", {"status": "delivered", "tracking_number": "PW1"}),
        409,
        "invalid_state_transition",
    )
    assert "submitted" in problem["detail"]
    assert_problem(
        partner_a.post(f"/api/v1/shipments/{pending['shipment_id']}/tracking", {"status": "shipped"}),
        409,
        "invalid_state_transition",
    )
    shipment = api_a.get(url).json()
    assert shipment["status"] == "submitted" and shipment["tracking_number"] is None
    assert [e["status"] for e in shipment["events"]] == ["submitted"]
    assert api_a.get(f"/api/v1/shipments/{pending['shipment_id']}").json()["events"] == []
    assert api_a.get(f"/api/v1/rewards/{ids['reward_id']}").json()["status"] == "processing"
    assert _events(funded_a) == []

    # bad input is problem+json and changes nothing either
    problem = assert_problem(partner_a.post(f"{url}/tracking", {"status": "lost"}), 422, "validation_error")
    assert "status" in problem["errors"]
    problem = assert_problem(
        partner_a.post(f"{url}/tracking", {"status": "shipped", "occurred_at": "yesterday"}), 422, "validation_error"
    )
    assert "occurred_at" in problem["errors"]
    assert_problem(partner_a.post(f"{url}/tracking", {"status": "submitted"}), 422, "validation_error")
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()
    problem = assert_problem(
        partner_a.post(f"{url}/tracking", {"status": "shipped", "occurred_at": tomorrow}), 422, "validation_error"
    )
    assert "occurred_at" in problem["errors"]
    assert_problem(
        partner_a.post(f"/api/v1/shipments/{uuid.uuid4()}/tracking", {"status": "shipped"}), 404, "not_found"
    )
    assert api_a.get(url).json()["status"] == "submitted"

    with tenant_context(funded_a):
        shipment_tracking_update(shipment_id=ids["shipment_id"], status="shipped")
        shipment_tracking_update(shipment_id=ids["shipment_id"], status="delivered")
        with pytest.raises(ApplicationError) as refused:
            shipment_transition(shipment=Shipment.objects.get(pk=ids["shipment_id"]), to="in_transit")
        assert (refused.value.code, refused.value.status) == ("invalid_state_transition", 409)
        assert Shipment.objects.get(pk=ids["shipment_id"]).status == "delivered"
    _assert_books_balance(funded_a)


def test_canceling_a_physical_reward_before_hand_over_cancels_its_shipment_through_its_state_machine(
    api_a, funded_a, shop
):
    ids = _order(api_a, shop)  # pending: not yet handed to fulfilment
    canceled = api_a.post(f"/api/v1/rewards/{ids['reward_id']}/cancel")
    assert canceled.status_code == 200, canceled.content
    assert canceled.json()["status"] == "canceled"
    shipment = api_a.get(f"/api/v1/shipments/{ids['shipment_id']}").json()
    assert shipment["status"] == "canceled"
    assert [(e["status"], e["description"]) for e in shipment["events"]] == [("canceled", "Reward canceled")]
    assert _events(funded_a) == []  # a cancel is the tenant's own act: no shipment webhook
    usd = _usd(funded_a)
    assert (usd.available, usd.held) == (Decimal("1000"), 0)
    _assert_books_balance(funded_a)


def _manifest_rows(text):
    return list(csv.reader(io.StringIO(text)))


def test_manifest_lists_the_days_submitted_shipments_and_neutralises_formulas(api_a, funded_a, shop, tmp_path):
    hostile = {
        **US_ADDRESS, "name": '=HYPERLINK("http://x")', "line1": "1 Navy Way;=1+1", "line2": "@SUM(A1:A9)",
        "city": "+Arlington",
    }  # fmt: skip
    first = _submitted(api_a, funded_a, shop, external_id="-crm-1")
    second = _submitted(api_a, funded_a, shop, address=hostile)
    _order(api_a, shop)  # pending: not handed to fulfilment yet
    eu = _submitted(
        api_a,
        funded_a,
        shop,
        product=shop.mug_eur,
        method=shop.ground_eu,
        amount="20.00",
        address={"name": "Ada", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    )
    shipped = _submitted(api_a, funded_a, shop)
    with tenant_context(funded_a):
        shipment_tracking_update(shipment_id=shipped["shipment_id"], status="shipped")  # already with the partner
    today = timezone.localdate()

    response = api_a.get("/api/v1/shipments/manifest.csv", {"day": today.isoformat(), "carrier": "parcelway"})
    assert response["Content-Disposition"] == f'attachment; filename="manifest-parcelway-{today.isoformat()}.csv"'
    rows = csv_export_rows(response)
    assert rows[0] == list(MANIFEST_COLUMNS)
    by_id = {row[0]: dict(zip(MANIFEST_COLUMNS, row, strict=True)) for row in rows[1:]}
    assert set(by_id) == {first["shipment_id"], second["shipment_id"]}
    plain = by_id[first["shipment_id"]]
    assert plain["reward_id"] == first["reward_id"] and plain["order_id"] == first["order_id"]
    assert plain["external_id"] == "'-crm-1"
    assert (plain["carrier"], plain["recipient_name"], plain["line1"], plain["state"]) == (
        "Parcelway",
        "Grace Hopper",
        "1 Navy Way",
        "VA",
    )
    assert plain["method"] == shop.ground_us.name and plain["postal_code"] == "22202" and plain["country"] == "US"
    assert plain["product"] == "Harvest Hampers Harvest Hamper" and plain["quantity"] == "1"
    neutral = by_id[second["shipment_id"]]
    assert neutral["recipient_name"] == '\'=HYPERLINK("http://x")'
    assert neutral["line2"] == "'@SUM(A1:A9)" and neutral["city"] == "'+Arlington"
    assert neutral["line1"] == "1 Navy Way;'=1+1"  # `=1+1` is a cell of its own in a `;` locale

    eu_rows = _manifest_rows(shipment_manifest_text(funded_a, today, "PostaEuropa"))
    assert [row[0] for row in eu_rows[1:]] == [eu["shipment_id"]]
    yesterday = api_a.get(
        "/api/v1/shipments/manifest.csv", {"day": (today - timedelta(days=1)).isoformat(), "carrier": "Parcelway"}
    )
    assert _manifest_rows(yesterday.content.decode()) == [list(MANIFEST_COLUMNS)]
    problem = assert_problem(
        api_a.get("/api/v1/shipments/manifest.csv", {"day": "22/11/2026"}), 422, "validation_error"
    )
    assert set(problem["errors"]) == {"day", "carrier"}
    asked_for_csv = api_a.get(
        "/api/v1/shipments/manifest.csv", {"day": today.isoformat(), "carrier": "Parcelway"}, HTTP_ACCEPT="text/csv"
    )
    assert asked_for_csv.status_code == 200 and asked_for_csv.content == response.content

    # the operator command: CSV on stdout (or a file), the count on stderr
    out, err = io.StringIO(), io.StringIO()
    call_command("shipment_manifest", "alpha", "--day", today.isoformat(), "--carrier", "Parcelway",
                 stdout=out, stderr=err)  # fmt: skip
    assert out.getvalue() == response.content.decode() and err.getvalue().strip() == "2"
    target = tmp_path / "manifest.csv"
    err = io.StringIO()
    call_command("shipment_manifest", "alpha", "--day", today.isoformat(), "--carrier", "Parcelway",
                 "--output", str(target), stdout=io.StringIO(), stderr=err)  # fmt: skip
    assert target.read_bytes() == response.content and err.getvalue().strip() == "2"


def shipment_manifest_text(tenant, day, carrier):
    with tenant_context(tenant):
        text, count = shipment_manifest(day=day, carrier=carrier)
    assert count == len(_manifest_rows(text)) - 1
    return text


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["shipment_id", "status", "tracking_number", "description", "location", "occurred_at"])
        writer.writerows(rows)
    return path


def test_tracking_import_applies_good_rows_reports_bad_ones_and_is_idempotent(api_a, funded_a, shop, tmp_path):
    one = _submitted(api_a, funded_a, shop)["shipment_id"]
    two = _submitted(api_a, funded_a, shop)["shipment_id"]
    still_pending = _order(api_a, shop)["shipment_id"]
    at = (timezone.now() - timedelta(minutes=5)).replace(microsecond=0)
    naive = (at - timedelta(days=1)).replace(tzinfo=None)
    path = _write_csv(
        tmp_path / "tracking.csv",
        [
            [one, "shipped", "PW1", "Picked up", "Reno, NV", at.isoformat()],  # row 2
            [one, "in_transit", "", "", "Denver, CO", ""],  # row 3
            [str(uuid.uuid4()), "shipped", "", "", "", ""],  # row 4: unknown shipment
            [still_pending, "shipped", "", "", "", ""],  # row 5: illegal (pending -> shipped)
            [two, "shipped", "PW2", "", "", naive.isoformat(sep=" ")],  # row 6 (naive: read as UTC)
            [one, "misplaced", "", "", "", ""],  # row 7: bad status
            [two, "in_transit", "", "", "", "next tuesday"],  # row 8: bad date
            [one, "delivered", "", "Signed by G. Hopper", "", ""],  # row 9
        ],
    )
    with tenant_context(funded_a):
        result = shipment_tracking_import(path=path)
    assert (result.applied, result.unchanged, result.failed) == (4, 0, 4)
    assert [(e.row, e.code) for e in result.errors] == [
        (4, "not_found"),
        (5, "invalid_state_transition"),
        (7, "validation_error"),
        (8, "validation_error"),
    ]
    assert "status" in result.errors[2].message and "occurred_at" in result.errors[3].message
    with tenant_context(funded_a):
        first, second = Shipment.objects.get(pk=one), Shipment.objects.get(pk=two)
        assert (first.status, first.tracking_number) == ("delivered", "PW1")
        assert (second.status, second.tracking_number) == ("shipped", "PW2")
        assert Shipment.objects.get(pk=still_pending).status == "pending"
        assert second.events.get(status="shipped").occurred_at == at - timedelta(days=1)
        event_count = ShipmentEvent.objects.count()
    webhooks = len(_events(funded_a))
    assert webhooks == 3  # shipped, delivered, shipped
    with tenant_context(funded_a):
        assert Shipment.objects.select_related("reward").get(pk=one).reward.status == "delivered"

    with tenant_context(funded_a):
        again = shipment_tracking_import(path=path)
        assert ShipmentEvent.objects.count() == event_count
    assert (again.applied, again.unchanged, again.failed) == (0, 4, 4)
    assert len(_events(funded_a)) == webhooks

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("shipment_tracking_import", "alpha", str(path), stdout=out, stderr=err)
    assert failed.value.returncode == 1
    assert out.getvalue().strip() == "applied=0 unchanged=4 failed=4"
    assert "row 4:" in err.getvalue() and "row 5:" in err.getvalue() and "row 7:" in err.getvalue()
    _assert_books_balance(funded_a)


def test_tracking_import_refuses_a_file_without_the_columns(funded_a, tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("id,state\n1,shipped\n")
    with tenant_context(funded_a), pytest.raises(ApplicationError) as refused:
        shipment_tracking_import(path=path)
    assert refused.value.code == "validation_error" and "shipment_id" in refused.value.detail
    with pytest.raises(CommandError):
        call_command("shipment_tracking_import", "alpha", str(tmp_path / "missing.csv"), stdout=io.StringIO())


def test_shipments_are_isolated_per_tenant_for_tenant_and_partner_keys(
    api_a, api_b, partner_a, funded_a, shop, tenant_a, tenant_b, make_partner_client
):
    ids = _submitted(api_a, funded_a, shop)
    url = f"/api/v1/shipments/{ids['shipment_id']}"
    today = {"day": timezone.localdate().isoformat(), "carrier": "Parcelway"}
    # Another tenant's partner, the twin schema's partner, another tenant's own key: none of them sees it.
    for intruder in (make_partner_client(tenant_b), make_partner_client(tenant_a.sandbox), api_b):
        if intruder.key.is_partner:
            assert_problem(intruder.post(f"{url}/tracking", {"status": "shipped"}), 404, "not_found")
        assert_problem(intruder.get(url), 404, "not_found")
        assert intruder.get("/api/v1/shipments").json()["results"] == []
        manifest = intruder.get("/api/v1/shipments/manifest.csv", today)
        assert _manifest_rows(manifest.content.decode()) == [list(MANIFEST_COLUMNS)]

    # Tenant A's partner sees its tenant's shipment: detail, list and the manifest it works from.
    assert partner_a.get(url).json()["status"] == "submitted"
    assert [s["id"] for s in partner_a.get("/api/v1/shipments").json()["results"]] == [ids["shipment_id"]]
    rows = _manifest_rows(partner_a.get("/api/v1/shipments/manifest.csv", today).content.decode())
    assert [row[0] for row in rows[1:]] == [ids["shipment_id"]]
    assert api_a.get(url).json()["status"] == "submitted" and _events(funded_a) == []


def test_shipment_list_filters_and_pages_under_a_query_budget(api_a, funded_a, shop, django_assert_max_num_queries):
    submitted = [_submitted(api_a, funded_a, shop)["shipment_id"] for _ in range(3)]
    pending = _order(api_a, shop)["shipment_id"]
    eu = _order(
        api_a,
        shop,
        product=shop.mug_eur,
        method=shop.ground_eu,
        amount="20.00",
        address={"name": "Ada", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    )["shipment_id"]
    with tenant_context(funded_a):
        shipment_tracking_update(shipment_id=submitted[0], status="shipped", tracking_number="PW9")

    seen = []
    url, params = "/api/v1/shipments", {"limit": 2}
    while url:
        with django_assert_max_num_queries(6):
            response = api_a.get(url, params)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [shipment["id"] for shipment in body["results"]]
        url, params = body["next"], None
    assert sorted(seen) == sorted([*submitted, pending, eu]) and len(seen) == len(set(seen))

    with django_assert_max_num_queries(6):
        everything = api_a.get("/api/v1/shipments", {"limit": 200}).json()["results"]
    first = next(s for s in everything if s["id"] == submitted[0])
    assert first["status"] == "shipped" and first["tracking_number"] == "PW9"
    assert [e["status"] for e in first["events"]] == ["submitted", "shipped"]

    only_submitted = api_a.get("/api/v1/shipments", {"status": "submitted"}).json()["results"]
    assert {s["id"] for s in only_submitted} == set(submitted[1:])
    by_carrier = api_a.get("/api/v1/shipments", {"carrier": "postaeuropa"}).json()["results"]
    assert [s["id"] for s in by_carrier] == [eu]
    assert_problem(api_a.get("/api/v1/shipments", {"status": "lost"}), 422, "validation_error")


def test_concurrent_return_reports_refund_once(committed_tenant, live_http):
    """20 partner callbacks for the same return, at once, over real HTTP: one refund, books balanced."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from funds.services import funds_deposit
    from tenants.services import api_key_create, partner_key_create
    from testsupport.api import http_json
    from testsupport.catalog import make_shop

    connection.set_schema_to_public()
    _, key = api_key_create(tenant=committed_tenant)
    _, partner_key = partner_key_create(tenant=committed_tenant, name="ShipCo")
    shop = make_shop()
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
    body = {
        "type": "physical",
        "rewards": [
            {
                "product_id": str(shop.hamper_usd.id),
                "amount": "50.00",
                "recipient": {"name": "Grace Hopper"},
                "shipping_address": US_ADDRESS,
                "shipping_method_id": str(shop.ground_us.id),
            }
        ],
    }
    status, order, _ = http_json("POST", f"{live_http}/api/v1/orders", key=key, body=body)
    assert status == 201, order
    reward_id = order["rewards"][0]["id"]
    with tenant_context(committed_tenant):
        reward_fulfil(reward_id=reward_id)
        shipment_id = str(Shipment.objects.get(reward_id=reward_id).id)
        shipment_tracking_update(shipment_id=shipment_id, status="shipped")
    url = f"{live_http}/api/v1/shipments/{shipment_id}/tracking"

    def report(index):
        return http_json("POST", url, key=partner_key, body={"status": "returned", "description": f"report {index}"})

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(report, range(20)))
    assert {status for status, _, _ in results} == {200}, results
    assert _refunds(committed_tenant, reward_id)[0].amount == HAMPER_COST
    assert len(_refunds(committed_tenant, reward_id)) == 1
    with tenant_context(committed_tenant):
        assert ShipmentEvent.objects.filter(shipment_id=shipment_id, status="returned").count() == 1
        assert Event.objects.filter(type="shipment.returned").count() == 1
        assert balance_get(currency="USD").available == Decimal("100")
        assert Reward.objects.get(pk=reward_id).status == "failed"
    _assert_books_balance(committed_tenant)
