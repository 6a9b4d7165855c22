"""Privacy rights: a person's export holds everything about them (never a code), and erasing them leaves their
email, phone and name in no text or JSON column of any table of the tenant's schema, while amounts and the
ledger stay whole."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import tenant_context

from audit.actors import Actor
from automations.running import automations_tick
from automations.services import automation_create
from funds.selectors import ledger_invariant_violations
from orders.models import Reward
from testsupport.batches import csv_bytes, digital_rows
from testsupport.batches import upload as batch_upload
from testsupport.orders import US_ADDRESS, digital_order, physical_order
from testsupport.problems import assert_problem

EMAIL = "zed.erasable@example.com"
PHONE = "+60129998887"
NAME = "Zed Quuxerasable"


def schema_mentions(tenant, needles: list[str]) -> list[str]:
    """`table.column` for every text, varchar or JSON column of the tenant's schema with a row holding a needle."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s AND data_type IN "
            "('text', 'character varying', 'json', 'jsonb') ORDER BY table_name, column_name",
            [tenant.schema_name],
        )
        for table, column in cursor.fetchall():
            where = " OR ".join(f'"{column}"::text ILIKE %s' for _ in needles)
            cursor.execute(f'SELECT count(*) FROM "{tenant.schema_name}"."{table}" WHERE {where}',
                           [f"%{needle}%" for needle in needles])  # fmt: skip
            if cursor.fetchone()[0]:
                found.append(f"{table}.{column}")
    return found


def test_export_then_erasure_leaves_nothing_of_the_person(api_a, funded_a, shop, make_api_client):
    from webhooks.endpoints import webhook_endpoint_create

    with tenant_context(funded_a):
        webhook_endpoint_create(url="http://127.0.0.1:9/hook", events=["*"])
        automation_create(actor=Actor.cli(), data={"name": "Birthday", "trigger": {"type": "birthday"},
                          "reward": {"product_id": str(shop.coffee_usd.id), "amount": "10.00"}})  # fmt: skip
    person = api_a.post("/api/v1/people", {"external_id": "emp-9", "name": NAME, "email": EMAIL, "phone": PHONE,
                                           "birthday": "12-07", "department": "Ops"}).json()  # fmt: skip
    api_a.patch(f"/api/v1/people/{person['id']}", {"department": "Sales"})
    by_person = digital_order(shop.coffee_usd, "25.00", external_id="crm-9")
    del by_person["rewards"][0]["recipient"]
    by_person["rewards"][0]["person_id"] = person["id"]
    assert api_a.post("/api/v1/orders", by_person, HTTP_IDEMPOTENCY_KEY="key-9").status_code == 201
    inline = digital_order(shop.coffee_usd, "10.00")
    inline["rewards"][0]["recipient"] = {"name": NAME, "email": EMAIL.upper(), "phone": PHONE}
    inline["rewards"][0]["message"] = f"Thanks {NAME}, write to {EMAIL} if anything is wrong"
    assert api_a.post("/api/v1/orders", inline).status_code == 201
    shipped = physical_order(shop.hamper_usd, shop.ground_us)
    shipped["rewards"][0]["recipient"] = {"name": NAME, "email": EMAIL}
    shipped["rewards"][0]["shipping_address"] = {**US_ADDRESS, "name": NAME, "line2": f"c/o {NAME}"}
    assert api_a.post("/api/v1/orders", shipped).status_code == 201
    rows = digital_rows(shop.coffee_usd, 2, amount="10")
    rows[0].update(recipient_name=NAME, recipient_email=EMAIL)
    assert batch_upload(api_a, csv_bytes(rows)).status_code == 201
    from django.core.files.uploadedfile import SimpleUploadedFile

    people_csv = f"external_id,name,email\r\nemp-9,{NAME},{EMAIL}\r\n".encode()
    api_a._client.post("/api/v1/people/import", {"file": SimpleUploadedFile("p.csv", people_csv)})
    activity = {"external_id": "a-9", "person_id": person["id"], "type": "call.logged",
                "occurred_at": "2026-12-06T08:00:00Z", "attributes": {"with": EMAIL}}  # fmt: skip
    api_a.post("/api/v1/activities", activity)
    program = {"slug": "kudos", "name": "Kudos", "points": {"name": "Kudos", "points_per_unit": 100, "currency": "USD"}}
    assert api_a.post("/api/v1/programs", program).status_code == 201
    award = {"person_id": person["id"], "program": "kudos", "points": 500, "reason": f"Thanks {NAME}!"}
    assert api_a.post("/api/v1/points/awards", award).status_code == 201
    with tenant_context(funded_a):
        from datetime import UTC, datetime

        automations_tick(now=datetime(2026, 12, 7, 9, 30, tzinfo=UTC))
        assert schema_mentions(funded_a, [EMAIL]), "the setup stores the email somewhere"
        charged_before = sorted(Reward.objects.values_list("charge_amount", flat=True))

    export = api_a.get(f"/api/v1/people/{person['id']}/export")
    assert export.status_code == 200
    document = export.json()
    assert document["person"]["email"] == EMAIL and document["activities"][0]["attributes"] == {"with": EMAIL}
    assert len(document["rewards"]) == 2  # the order by person_id and the birthday automation's
    assert all(reward["claim_url"] is None and reward["timeline"] for reward in document["rewards"])
    assert [run["status"] for run in document["automation_runs"]] == ["sent"]
    assert document["points"]["programs"] == [
        {"program": "kudos", "balance": 500, "value": {"amount": "5.00", "currency": "USD"}}
    ]
    assert_problem(make_api_client(funded_a.sandbox).get(f"/api/v1/people/{person['id']}/export"), 404)

    assert api_a.delete(f"/api/v1/people/{person['id']}").status_code == 204
    assert_problem(api_a.delete(f"/api/v1/people/{person['id']}"), 404)
    with tenant_context(funded_a):
        assert schema_mentions(funded_a, [EMAIL, PHONE, NAME]) == []
        assert sorted(Reward.objects.values_list("charge_amount", flat=True)) == charged_before
        assert ledger_invariant_violations() == []


def test_retention_anonymises_recipients_after_delivery(api_a, api_b, funded_a, shop):
    from datetime import timedelta

    from django.utils import timezone

    from orders.erasure import rewards_anonymise_delivered

    assert api_a.get("/api/v1/privacy").json()["recipient_retention_days"] is None
    assert_problem(api_a.patch("/api/v1/privacy", {"recipient_retention_days": 0}), 422, "validation_error")
    assert api_a.patch("/api/v1/privacy", {"recipient_retention_days": 30}).json()["recipient_retention_days"] == 30
    assert api_b.get("/api/v1/privacy").json()["recipient_retention_days"] is None  # per tenant
    old, recent, undelivered = (api_a.post("/api/v1/orders", digital_order(shop.coffee_usd)).json()["rewards"][0]["id"]
                                for _ in range(3))  # fmt: skip
    with tenant_context(funded_a):
        from webhooks.endpoints import webhook_endpoint_create

        webhook_endpoint_create(url="http://127.0.0.1:9/hook", events=["*"])  # stored events and deliveries
    shipped = api_a.post("/api/v1/orders", physical_order(shop.hamper_usd, shop.ground_us)).json()["rewards"][0]
    with tenant_context(funded_a):
        from fulfillment.models import Shipment

        now = timezone.now()
        Reward.objects.filter(pk__in=[old, shipped["id"]]).update(status="delivered",
                                                                  delivered_at=now - timedelta(days=31))  # fmt: skip
        Reward.objects.filter(pk=recent).update(status="delivered", delivered_at=now - timedelta(days=29))
        assert rewards_anonymise_delivered(now=now) == 2
        assert rewards_anonymise_delivered(now=now) == 0  # once
        assert Shipment.objects.get(reward_id=shipped["id"]).address == {"name": "[erased]", "country": "US"}
        assert schema_mentions(funded_a, [US_ADDRESS["name"], US_ADDRESS["line1"], "grace@example.com"]) == []
        rewards = {str(r.pk): r for r in Reward.objects.all()}
    assert (rewards[old].recipient_email, rewards[old].recipient_name, rewards[old].amount) == ("", "[erased]", 25)
    assert rewards[recent].recipient_email == rewards[undelivered].recipient_email == "ada@example.com"
