"""People and activities as an integrator sees them: add, find, change, refuse, stay isolated; orders and bulk
rows that name a person instead of a recipient."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from orders.models import Reward
from people.models import Person
from testsupport.batches import csv_bytes
from testsupport.batches import upload as batch_upload
from testsupport.orders import digital_order
from testsupport.problems import assert_problem
from webhooks.models import Event

SITI = {
    "external_id": "emp-42",
    "name": "Siti Aminah",
    "email": "Siti@Example.com",
    "phone": "+60123456789",
    "locale": "ms",
    "timezone": "Asia/Kuala_Lumpur",
    "country": "my",
    "birthday": "03-14",
    "hire_date": "2021-06-01",
    "department": "Engineering",
    "manager_email": "lead@example.com",
    "attributes": {"cost_center": "R&D", "certified_on": "2024-02-01"},
}


def test_create_get_and_duplicate(api_a, tenant_a):
    response = api_a.post("/api/v1/people", SITI)
    assert response.status_code == 201, response.content
    person = response.json()
    assert person["status"] == "active" and person["email"] == "siti@example.com" and person["country"] == "MY"
    assert (person["birthday"], person["hire_date"], person["attributes"]["cost_center"]) == (
        "03-14",
        "2021-06-01",
        "R&D",
    )
    assert api_a.get(f"/api/v1/people/{person['id']}").json() == person
    body = assert_problem(api_a.post("/api/v1/people", {**SITI, "email": "other@example.com"}), 409,
                          "duplicate_external_id")  # fmt: skip
    assert body["errors"] == {"external_id": ["Already used by another person."]}
    with tenant_context(tenant_a):
        assert Person.objects.count() == 1
        assert list(Event.objects.filter(type="person.created").values_list("data__id", flat=True)) == [person["id"]]


def test_bad_fields_are_named_and_change_nothing(api_a, tenant_a):
    body = assert_problem(
        api_a.post("/api/v1/people", {"external_id": "x", "name": "X", "timezone": "Mars/Base", "birthday": "02-30",
                                      "email": "nope", "phone": "0123", "country": "Malaysia", "hire_date": "1/2/21",
                                      "attributes": {"bad key": 1}}),
        422, "validation_error",
    )  # fmt: skip
    assert set(body["errors"]) == {"timezone", "birthday", "email", "phone", "country", "hire_date", "attributes"}
    assert "name" in assert_problem(api_a.post("/api/v1/people", {"external_id": "y"}), 422)["errors"]
    # 29 February: a birthday without a year, and with a leap year; never with another year.
    assert api_a.post("/api/v1/people", {"external_id": "leap", "name": "Leap", "birthday": "02-29"}).status_code == 201
    assert (
        api_a.post("/api/v1/people", {"external_id": "l2", "name": "Leap", "birthday": "2000-02-29"}).status_code == 201
    )
    not_leap = {"external_id": "l3", "name": "L", "birthday": "2001-02-29"}
    assert "birthday" in assert_problem(api_a.post("/api/v1/people", not_leap), 422)["errors"]
    wide_digits = {"external_id": "l4", "name": "L", "birthday": "\uff11\uff12-01"}  # full-width "12-01"
    assert "birthday" in assert_problem(api_a.post("/api/v1/people", wide_digits), 422)["errors"]
    with tenant_context(tenant_a):
        assert sorted(Person.objects.values_list("external_id", flat=True)) == ["l2", "leap"]


def test_patch_and_mark_left(api_a, tenant_a):
    person = api_a.post("/api/v1/people", SITI).json()
    api_a.post("/api/v1/people", {"external_id": "emp-43", "name": "Ali"})
    changed = api_a.patch(f"/api/v1/people/{person['id']}", {"department": "Sales", "status": "left"}).json()
    assert changed["department"] == "Sales" and changed["status"] == "left" and changed["left_at"]
    assert changed["email"] == "siti@example.com"  # untouched: PATCH changes only what it names
    assert_problem(api_a.patch(f"/api/v1/people/{person['id']}", {"external_id": "emp-43"}), 409,
                   "duplicate_external_id")  # fmt: skip
    assert_problem(api_a.patch(f"/api/v1/people/{person['id']}", {"name": ""}), 422, "validation_error")
    back = api_a.patch(f"/api/v1/people/{person['id']}", {"status": "active"}).json()
    assert back["status"] == "active" and back["left_at"] is None
    with tenant_context(tenant_a):
        changes = list(
            Event.objects.filter(type="person.updated").order_by("created_at").values_list("data__changed", flat=True)
        )
    assert changes == [["department", "status"], ["status"]]


def test_list_filters_pagination_and_query_budget(api_a, django_assert_max_num_queries):
    for index in range(7):
        api_a.post("/api/v1/people", {"external_id": f"e{index}", "name": f"Person {index}",
                                      "email": f"p{index}@example.com",
                                      "department": "Sales" if index % 2 else "Ops"})  # fmt: skip
    api_a.patch(f"/api/v1/people/{api_a.get('/api/v1/people', {'external_id': 'e6'}).json()['results'][0]['id']}",
                {"status": "left"})  # fmt: skip
    first = api_a.get("/api/v1/people", {"limit": 4}).json()
    assert len(first["results"]) == 4 and first["next"]
    second = api_a.get(first["next"]).json()
    assert len(second["results"]) == 3
    assert {p["external_id"] for p in first["results"] + second["results"]} == {f"e{i}" for i in range(7)}
    names = lambda **params: sorted(p["external_id"] for p in api_a.get("/api/v1/people", params).json()["results"])  # noqa: E731
    assert names(department="Sales") == ["e1", "e3", "e5"]
    assert names(email="P2@example.com") == ["e2"]
    assert names(q="son 4") == ["e4"]
    assert names(status="left") == ["e6"]
    assert_problem(api_a.get("/api/v1/people", {"status": "gone"}), 422, "validation_error")
    with django_assert_max_num_queries(8):
        api_a.get("/api/v1/people")


def test_isolation_between_tenants_and_sandbox(api_a, api_b, tenant_a, make_api_client):
    person = api_a.post("/api/v1/people", SITI).json()
    sandbox = make_api_client(tenant_a.sandbox)
    for client in (api_b, sandbox):
        assert_problem(client.get(f"/api/v1/people/{person['id']}"), 404)
        assert_problem(client.patch(f"/api/v1/people/{person['id']}", {"name": "Mallory"}), 404)
        assert_problem(client.delete(f"/api/v1/people/{person['id']}"), 404)
        assert client.get("/api/v1/people").json()["results"] == []
    # The same external_id is free in another tenant and in the sandbox twin.
    assert api_b.post("/api/v1/people", SITI).status_code == 201
    assert sandbox.post("/api/v1/people", SITI).status_code == 201
    read_only = make_api_client(tenant_a, scopes=["read"])
    assert_problem(read_only.post("/api/v1/people", {**SITI, "external_id": "r"}), 403)
    assert api_a.get(f"/api/v1/people/{person['id']}").json()["name"] == "Siti Aminah"


def test_activity_is_recorded_once(api_a, tenant_a, django_assert_max_num_queries):
    person = api_a.post("/api/v1/people", SITI).json()
    body = {"external_id": "deal-1", "person_external_id": "emp-42", "type": "deal.closed",
            "occurred_at": "2026-12-06T08:30:00Z", "amount": "1200.00", "currency": "usd"}  # fmt: skip
    first = api_a.post("/api/v1/activities", body)
    assert first.status_code == 201, first.content
    recorded = first.json()
    assert (recorded["person_id"], recorded["amount"], recorded["currency"]) == (person["id"], "1200.00", "USD")
    assert recorded["points_earned"] == 0
    again = api_a.post("/api/v1/activities", {**body, "amount": "99.00"})
    assert again.status_code == 200 and again.json() == recorded
    assert_problem(api_a.post("/api/v1/activities", {**body, "external_id": "deal-2", "person_external_id": "nobody"}),
                   422, "unknown_person")  # fmt: skip
    assert_problem(api_a.post("/api/v1/activities", {**body, "external_id": "deal-3", "amount": "1e3"}), 422)
    with tenant_context(tenant_a):
        from people.models import Activity

        assert list(Activity.objects.values_list("external_id", flat=True)) == ["deal-1"]
    listed = api_a.get("/api/v1/activities", {"person_id": person["id"]}).json()["results"]
    assert listed == [recorded]
    with django_assert_max_num_queries(8):
        api_a.get("/api/v1/activities")


def test_order_names_a_person_and_copies_their_fields(api_a, funded_a, shop):
    person = api_a.post("/api/v1/people", SITI).json()
    body = digital_order(shop.coffee_usd, "25.00")
    del body["rewards"][0]["recipient"]
    body["rewards"][0]["person_external_id"] = "emp-42"
    order = api_a.post("/api/v1/orders", body)
    assert order.status_code == 201, order.content
    [reward] = order.json()["rewards"]
    assert reward["person_id"] == person["id"]
    assert reward["recipient"] == {"name": "Siti Aminah", "email": "siti@example.com", "phone": "+60123456789"}
    assert reward["locale"] == "ms"
    # A later edit of the person does not rewrite what was sent.
    api_a.patch(f"/api/v1/people/{person['id']}", {"email": "new@example.com"})
    assert api_a.get(f"/api/v1/rewards/{reward['id']}").json()["recipient"]["email"] == "siti@example.com"
    listed = api_a.get("/api/v1/orders", {"person_id": person["id"]}).json()["results"]
    assert [o["id"] for o in listed] == [order.json()["id"]]
    assert api_a.get("/api/v1/rewards", {"person_id": person["id"]}).json()["results"][0]["id"] == reward["id"]
    assert_problem(api_a.get("/api/v1/orders", {"person_id": "nope"}), 422, "validation_error")

    both = digital_order(shop.coffee_usd)
    both["rewards"][0]["person_id"] = person["id"]
    assert "rewards[0].recipient" in assert_problem(api_a.post("/api/v1/orders", both), 422)["errors"]
    unknown = digital_order(shop.coffee_usd)
    del unknown["rewards"][0]["recipient"]
    unknown["rewards"][0]["person_external_id"] = "ghost"
    assert "rewards[0].person_external_id" in assert_problem(api_a.post("/api/v1/orders", unknown), 422)["errors"]
    api_a.patch(f"/api/v1/people/{person['id']}", {"status": "left"})
    assert_problem(api_a.post("/api/v1/orders", body), 422, "validation_error")
    with tenant_context(funded_a):
        assert Reward.objects.count() == 1


def test_bulk_rows_name_people(api_a, funded_a, shop):
    api_a.post("/api/v1/people", SITI)
    ali = api_a.post("/api/v1/people", {"external_id": "emp-7", "name": "Ali", "email": "ali@example.com"}).json()
    rows = [
        {"person_external_id": "emp-42", "product_id": str(shop.coffee_usd.id), "amount": "10"},
        {"person_id": ali["id"], "product_id": str(shop.coffee_usd.id), "amount": "25"},
        {"person_external_id": "ghost", "product_id": str(shop.coffee_usd.id), "amount": "10"},
        {"person_external_id": "emp-7", "recipient_name": "Someone", "product_id": str(shop.coffee_usd.id),
         "amount": "10"},
    ]  # fmt: skip
    columns = ["person_id", "person_external_id", "recipient_name", "product_id", "amount"]
    upload = batch_upload(api_a, csv_bytes(rows, columns=columns))
    assert upload.status_code == 201, upload.content
    batch = upload.json()
    assert (batch["rows"], batch["valid_rows"]) == (4, 2)
    errors = b"".join(api_a.get(batch["errors_url"]).streaming_content).decode()
    assert "No such person." in errors and "not both" in errors
    from batches.processing import batch_process

    api_a.post(f"/api/v1/batches/{batch['id']}/confirm")
    with tenant_context(funded_a):
        batch_process(batch_id=batch["id"])
        sent = dict(Reward.objects.values_list("recipient_email", "person__external_id"))
    assert sent == {"siti@example.com": "emp-42", "ali@example.com": "emp-7"}


def test_delete_erases_the_person_and_their_reward_copies(api_a, funded_a, shop):
    person = api_a.post("/api/v1/people", SITI).json()
    body = digital_order(shop.coffee_usd, "25.00")
    del body["rewards"][0]["recipient"]
    body["rewards"][0]["person_id"] = person["id"]
    reward = api_a.post("/api/v1/orders", body).json()["rewards"][0]
    assert api_a.delete(f"/api/v1/people/{person['id']}").status_code == 204
    assert_problem(api_a.delete(f"/api/v1/people/{person['id']}"), 404, "not_found")
    assert_problem(api_a.get(f"/api/v1/people/{person['id']}"), 404)
    erased = api_a.get(f"/api/v1/rewards/{reward['id']}").json()
    assert erased["recipient"] == {"name": "[erased]", "email": None, "phone": None} and erased["message"] == ""
    assert (erased["amount"], erased["status"]) == ("25.00", "pending")
    with tenant_context(funded_a):
        assert Event.objects.filter(type="person.deleted", data__id=person["id"]).exists()
