"""The attacker review of zero-cost discounts, discount pools and reports, points CSV files (API and portal): money
and points in every odd form, other tenants' and the sandbox's ids, read-only and partner keys on writes and
reports, formulas in what a spreadsheet opens. Each refusal changes nothing; the books balance (kudos fixture)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from catalog.services import brand_upsert, product_create
from funds.models import Hold, LedgerTransaction
from orders.models import Order
from points.models import PointsAward
from programs.services import program_create
from testsupport.orders import digital_order
from testsupport.problems import assert_problem

from .conftest import make_person

ODD_POINTS = ["0", "-1", "NaN", "1e3", "٢٥", "1,000", "1.5", "100000001", " ", "0x10", "+5"]
ODD_AMOUNTS = ["0", "0.00", "-10.00", "NaN", "Infinity", "1e400", "10.001", "1,000", "٢٥", "", "10.00.0"]


def _points_file(api, text: str, **fields):
    file = SimpleUploadedFile("odd.csv", text.encode(), content_type="text/csv")
    return api._client.post("/api/v1/points/awards/import", {"file": file, "program": "kudos", **fields})


def test_points_files_refuse_every_odd_number_of_points(tenant_a, api_a, kudos, ana):
    lines = ["person_external_id,points"] + [f'E-1,"{value}"' for value in ODD_POINTS]
    refused = _points_file(api_a, "\n".join(lines) + "\n")
    assert_problem(refused, 422, "no_valid_rows")
    assert len(refused.json()["errors"]) == len(ODD_POINTS)
    assert all(messages == ["A whole number of points from 1 to 100000000."]
               for messages in refused.json()["errors"].values())  # fmt: skip
    with tenant_context(tenant_a):
        assert not PointsAward.objects.exists() and not Hold.objects.exists()


def test_a_free_discount_takes_no_odd_amount(tenant_a, api_a, kudos):
    free = product_create(
        brand=brand_upsert(slug="kedai-free-odd", name="Kedai"), name="Kedai 5% off", type="discount",
        currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="5", zero_cost=True,
    )  # fmt: skip
    for amount in ODD_AMOUNTS:
        response = api_a.post("/api/v1/orders", digital_order(free, amount))
        assert response.status_code in (400, 422), (amount, response.content)
    with tenant_context(tenant_a):
        before = LedgerTransaction.objects.count()
        assert not Order.objects.exists()
    for amount in ("10", "10.0", "10.00"):  # the face value, however written: free
        assert api_a.post("/api/v1/orders", digital_order(free, amount)).json()["total"]["amount"] == "0.00"
    with tenant_context(tenant_a):
        assert LedgerTransaction.objects.count() == before


def test_keys_that_may_not_write_or_read_are_refused(
    tenant_a, tenant_b, api_a, api_b, kudos, ana, make_api_client, make_partner_client
):
    reader = make_api_client(tenant_a, scopes=["read"])
    assert_problem(_points_file(reader, "person_external_id,points\nE-1,10\n"), 403)
    uploaded = _points_file(api_a, "person_external_id,points\nE-1,10\n").json()
    assert_problem(reader.post(f"/api/v1/batches/{uploaded['id']}/confirm"), 403)
    sandbox = make_api_client(tenant_a.sandbox)
    other = api_b
    for client in (sandbox, other):
        assert client.get(f"/api/v1/batches/{uploaded['id']}").status_code == 404
        assert client.post(f"/api/v1/batches/{uploaded['id']}/confirm").status_code == 404
    merchant = make_partner_client(tenant_a, name="Kedai", scope="discounts:report")
    for path in ("/api/v1/reports/discounts", "/api/v1/reports/points", "/api/v1/points/awards/import"):
        assert merchant.get(path).status_code in (401, 403), path
    for query in ({"from": "2026-13-01"}, {"to": "yesterday"}, {"group_by": "person"}, {"format": "pdf"},
                  {"from": "2026-12-05", "to": "2026-01-01"}):  # fmt: skip
        assert reader.get("/api/v1/reports/discounts", query).status_code == 400, query
    assert reader.get("/api/v1/reports/points", {"from": "NaN"}).status_code == 422
    assert reader.get("/api/v1/reports/points", {"format": "exe"}).status_code == 400
    with tenant_context(tenant_a):
        assert not PointsAward.objects.exists() and not Hold.objects.exists()


def test_names_that_look_like_formulas_are_inert_in_the_report_files(tenant_a, api_a, funded_a, make_api_client):
    product = product_create(
        brand=brand_upsert(slug="kedai-formula", name="Kedai"), name="Kedai 5% off", type="discount",
        currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="5", valid_until=date(2027, 1, 1),
    )  # fmt: skip
    with tenant_context(tenant_a):
        program_create(slug="evil", name='=HYPERLINK("http://evil.example","x")', points={
            "name": "@SUM(1)", "points_per_unit": 100, "currency": "USD"})  # fmt: skip
    body = digital_order(product, "10.00") | {"program": "evil"}
    body["rewards"][0]["delivery_method"] = "api"
    reward_id = api_a.post("/api/v1/orders", body).json()["rewards"][0]["id"]
    from fulfillment.services import reward_fulfil

    with tenant_context(tenant_a):
        reward_fulfil(reward_id=reward_id)
    person = make_person(tenant_a, "E-5")
    assert api_a.post("/api/v1/points/awards", {"person_id": str(person.pk), "program": "evil",
                                                "points": 10}).status_code == 201  # fmt: skip
    for path in ("/api/v1/reports/discounts", "/api/v1/reports/points"):
        text = api_a.get(path, {"format": "csv"}).content.decode()
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        assert any("HYPERLINK" in cell or "SUM(1)" in cell for cell in cells), path
        assert not any(cell.lstrip().startswith(("=", "@", "+", "-")) for cell in cells if cell), (path, cells)


@pytest.mark.parametrize("role", ["viewer", "finance"])
def test_staff_who_may_not_send_cannot_import_points(tenant_a, kudos, role):
    from testsupport.portal import make_staff, portal_client, sign_in

    client = portal_client(tenant_a)
    sign_in(client, make_staff(tenant_a, f"{role}@alpha.test", role).email)
    assert client.get("/points/import/").status_code == 403
    file = SimpleUploadedFile("a.csv", b"person_external_id,points\nE-1,10\n", content_type="text/csv")
    assert client.post("/points/import/", {"program": "kudos", "file": file}).status_code == 403
    with tenant_context(tenant_a):
        assert not PointsAward.objects.exists()
