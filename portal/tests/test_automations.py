"""The Automations pages: create from the Birthday template, see who is coming up with the cost, the run history
(sent, or why not), pause; a person's page shows what is coming and exports or erases them; viewers see nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django_tenants.utils import tenant_context

from automations.models import Automation
from automations.running import automations_tick
from people.models import Person


def test_birthday_template_upcoming_history_and_pause(signed_in, funded_a, shop):
    client, _ = signed_in("manager")
    page = client.get("/automations/new/", {"template": "birthday"}).content.decode()
    assert "Happy birthday, {first_name}!" in page
    soon = datetime.now(UTC) + timedelta(days=2)
    client.post("/people/new/", {"external_id": "e1", "name": "Ana Lim", "email": "ana@example.com",
                                 "birthday": soon.strftime("%m-%d")})  # fmt: skip
    form = {"name": "Birthday", "trigger_type": "birthday", "product_id": str(shop.coffee_usd.id), "amount": "25",
            "delivery_method": "email", "message": "Happy birthday, {first_name}!", "send_time": "09:00",
            "days_offset": "0", "enabled": "on"}  # fmt: skip
    refused = client.post("/automations/new/", {**form, "amount": "30"})
    assert refused.status_code == 422 and 'id="id_amount_error"' in refused.content.decode()
    created = client.post("/automations/new/", form)
    assert created.status_code == 302, created.content.decode()[:2000]
    listing = client.get("/automations/").content.decode()
    assert "Birthday" in listing and "1 reward, 25.00 USD" in listing
    detail = client.get(created["Location"]).content.decode()
    assert "Ana Lim" in detail and "Nothing sent yet." in detail
    with tenant_context(funded_a):
        person = Person.objects.get()
        automation = Automation.objects.get()
    assert "Birthday" in client.get(f"/people/{person.id}/").content.decode()
    with tenant_context(funded_a):
        automations_tick(now=soon.replace(hour=9, minute=1))
    history = client.get(created["Location"]).content.decode()
    assert ">Sent<" in history
    with tenant_context(funded_a):
        order_id = automation.runs.get().order_id
    assert 'data-testid="order-automation"><a' in client.get(f"/orders/{order_id}/").content.decode()
    assert client.post(f"/automations/{automation.id}/toggle").status_code == 302
    with tenant_context(funded_a):
        automation.refresh_from_db()
    assert automation.enabled is False


def test_person_export_and_erase(signed_in, funded_a):
    client, _ = signed_in("admin")
    client.post("/people/new/", {"external_id": "e9", "name": "Zed", "email": "zed@example.com"})
    with tenant_context(funded_a):
        person = Person.objects.get()
    export = client.get(f"/people/{person.id}/export.json")
    assert export.status_code == 200 and export.json()["person"]["email"] == "zed@example.com"
    assert "attachment" in export["Content-Disposition"]
    client.post(f"/people/{person.id}/erase", {"confirm_external_id": "wrong"})
    with tenant_context(funded_a):
        assert Person.objects.exists()  # not confirmed: nothing erased
    assert client.post(f"/people/{person.id}/erase", {"confirm_external_id": "e9"}).status_code == 302
    with tenant_context(funded_a):
        assert not Person.objects.exists()


def test_viewers_cannot_open_automations(signed_in):
    client, _ = signed_in("viewer")
    assert client.get("/automations/").status_code == 403
    assert client.get("/automations/new/").status_code == 403


def test_a_points_automation_shows_its_points_and_is_changed_over_the_api(signed_in, funded_a):
    from audit.actors import Actor
    from automations.services import automation_create
    from programs.services import program_create

    client, _ = signed_in("manager")
    with tenant_context(funded_a):
        program_create(slug="kudos", name="Kudos", points={"name": "Kudos", "points_per_unit": 100, "currency": "USD"})
        auto = automation_create(actor=Actor.cli(), data={"name": "Kudos day", "trigger": {"type": "birthday"},
                                                          "reward": {"points": 500, "program": "kudos"}})  # fmt: skip
    assert "500 Kudos" in client.get("/automations/").content.decode()
    assert "500 Kudos" in client.get(f"/automations/{auto.id}/").content.decode()
    assert client.get(f"/automations/{auto.id}/edit/").status_code == 302  # the gift form would make it a gift
    assert client.post(f"/automations/{auto.id}/edit/", {"name": "x"}).status_code == 302
    with tenant_context(funded_a):
        assert Automation.objects.get(pk=auto.pk).points == 500


def _people_reads(queries) -> int:
    return sum(1 for query in queries if "people_person" in query["sql"])


def test_the_list_shows_each_automations_coming_sends_without_reading_the_directory_each_time(
    signed_in, funded_a, shop, django_capture_on_commit_callbacks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client, _ = signed_in("manager")
    soon = datetime.now(UTC) + timedelta(days=3)
    base = {"trigger_type": "birthday", "product_id": str(shop.coffee_usd.id), "amount": "25",
            "delivery_method": "email", "message": "Happy birthday!", "send_time": "09:00", "days_offset": "0",
            "enabled": "on"}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            client.post("/people/new/", {"external_id": f"b{n}", "name": f"Person {n}", "email": f"p{n}@example.com",
                                         "birthday": soon.strftime("%m-%d")})  # fmt: skip
        for name in ("Birthday A", "Birthday B", "Birthday C"):
            assert client.post("/automations/new/", {**base, "name": name}).status_code == 302
    first = client.get("/automations/").content.decode()
    assert first.count("3 rewards, 75.00 USD") == 3
    with CaptureQueriesContext(connection) as again:
        listing = client.get("/automations/").content.decode()
    assert listing.count("3 rewards, 75.00 USD") == 3 and _people_reads(again.captured_queries) == 0

    # A new person with a birthday in the window: every row counts them at once.
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/people/new/", {"external_id": "b9", "name": "Late Joiner", "email": "late@example.com",
                                     "birthday": soon.strftime("%m-%d")})  # fmt: skip
    assert client.get("/automations/").content.decode().count("4 rewards, 100.00 USD") == 3
    # One automation changed (a larger gift) or paused: its row says so, the others stay as they were.
    with tenant_context(funded_a):
        changed, paused = Automation.objects.filter(name__in=["Birthday A", "Birthday B"]).order_by("name")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/automations/{changed.id}/edit/", {**base, "name": "Birthday A", "amount": "50"})
        client.post(f"/automations/{paused.id}/toggle")
    listing = client.get("/automations/").content.decode()
    assert "4 rewards, 200.00 USD" in listing and "0 rewards, 0.00 USD" in listing and "Paused" in listing
    assert listing.count("4 rewards, 100.00 USD") == 1
    # Once the day's rewards went out, nothing is left to send this month.
    with django_capture_on_commit_callbacks(execute=True), tenant_context(funded_a):
        automations_tick(now=soon.replace(hour=9, minute=1))
    listing = client.get("/automations/").content.decode()
    assert "4 rewards" not in listing and listing.count("0 rewards") == 3
