"""One of everything a tenant schema can hold, built through the services and the API, for the security tests.

`build_world(owner, api, shop)` creates in `owner`'s schema (live or sandbox): a deposit, a program, an
API-delivered digital reward (delivered, code issued), a physical reward with its shipment (submitted), a
webhook endpoint and an event with a delivery. `schema_fingerprint(tenant)` hashes every table of a schema,
so a test can prove that a foreign call changed nothing at all, whichever app (today's or tomorrow's) owns
the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection, transaction
from django_tenants.utils import tenant_context

from testsupport.orders import physical_order


@dataclass
class World:
    tenant: object
    transaction_id: str = ""
    program_slug: str = ""
    order_id: str = ""
    reward_id: str = ""
    physical_order_id: str = ""
    physical_reward_id: str = ""
    shipment_id: str = ""
    endpoint_id: str = ""
    event_id: str = ""
    batch_id: str = ""
    person_id: str = ""
    activity_id: str = ""
    award_id: str = ""
    rule_id: str = ""
    automation_id: str = ""
    product_id: str = ""  # a global catalogue product (visible to every tenant)
    carrier: str = ""  # the physical reward's carrier (manifest queries)
    code: str = ""
    pin: str = ""
    secrets: list[str] = field(default_factory=list)

    def ids(self) -> dict[str, str]:
        """Every object id of this world, by kind (what no other tenant may ever see)."""
        return {
            "transaction": self.transaction_id,
            "program": self.program_slug,
            "order": self.order_id,
            "reward": self.reward_id,
            "physical_order": self.physical_order_id,
            "physical_reward": self.physical_reward_id,
            "shipment": self.shipment_id,
            "endpoint": self.endpoint_id,
            "event": self.event_id,
            "batch": self.batch_id,
            "person": self.person_id,
            "activity": self.activity_id,
            "award": self.award_id,
            "earning_rule": self.rule_id,
            "automation": self.automation_id,
        }


def build_world(owner, api, shop, *, hook_url: str = "http://127.0.0.1:9/hook") -> World:
    from core import crypto
    from fulfillment.services import reward_fulfil
    from funds.models import LedgerTransaction
    from funds.services import funds_deposit
    from orders.models import Reward
    from programs.services import program_create
    from webhooks.endpoints import webhook_endpoint_create
    from webhooks.events import event_emit

    world = World(tenant=owner, product_id=str(shop.coffee_usd.id), carrier=shop.ground_us.carrier)
    with tenant_context(owner):
        funds_deposit(currency="USD", amount="1000.00")
        world.transaction_id = str(LedgerTransaction.objects.filter(kind="deposit").latest("created_at").id)
        points = {"name": "Kudos", "points_per_unit": 100, "currency": "USD", "self_redeem": True}
        world.program_slug = program_create(slug="security-matrix", name="Security matrix", points=points).slug
        endpoint, secret = webhook_endpoint_create(url=hook_url, events=["*"])
        world.endpoint_id, world.secrets = endpoint.id, [secret]
        with transaction.atomic():
            world.event_id = event_emit(type="balance.credited", data={"currency": "USD", "amount": "1.00"}).id

    digital = {
        "type": "digital",
        "program": world.program_slug,
        "rewards": [
            {
                "product_id": str(shop.coffee_usd.id),
                "amount": "25.00",
                "currency": "USD",
                "delivery_method": "api",
                "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
            }
        ],
    }
    created = api.post("/api/v1/orders", digital)
    assert created.status_code == 201, created.content
    world.order_id = created.json()["id"]
    world.reward_id = created.json()["rewards"][0]["id"]

    physical = physical_order(shop.hamper_usd, shop.ground_us)
    created = api.post("/api/v1/orders", physical)
    assert created.status_code == 201, created.content
    world.physical_order_id = created.json()["id"]
    world.physical_reward_id = created.json()["rewards"][0]["id"]

    world.batch_id = _batch(api, shop)
    person = api.post("/api/v1/people", {"external_id": "emp-1", "name": "Ada Lovelace", "email": "ada@example.com"})
    assert person.status_code == 201, person.content
    world.person_id = person.json()["id"]
    activity_body = {"external_id": "deal-1", "person_id": world.person_id, "type": "deal.closed",
                     "occurred_at": "2026-12-06T08:00:00Z"}  # fmt: skip
    activity = api.post("/api/v1/activities", activity_body)
    assert activity.status_code == 201, activity.content
    world.activity_id = activity.json()["id"]
    award = api.post("/api/v1/points/awards", {"person_id": world.person_id, "program": world.program_slug,
                                               "points": 5000, "external_id": "award-1"})  # fmt: skip
    assert award.status_code == 201, award.content
    world.award_id = award.json()["id"]
    rule = api.post("/api/v1/earning-rules", {"program": world.program_slug, "activity_type": "deal.closed",
                                              "points_fixed": 10})  # fmt: skip
    assert rule.status_code == 201, rule.content
    world.rule_id = rule.json()["id"]
    automation_body = {"name": "Birthdays", "trigger": {"type": "birthday"},
                       "reward": {"product_id": str(shop.coffee_usd.id), "amount": "25.00"}}  # fmt: skip
    automation = api.post("/api/v1/automations", automation_body)
    assert automation.status_code == 201, automation.content
    world.automation_id = automation.json()["id"]

    with tenant_context(owner):
        reward_fulfil(reward_id=world.reward_id)
        reward_fulfil(reward_id=world.physical_reward_id)
        reward = Reward.objects.get(pk=world.reward_id)
        assert reward.status == "delivered", reward.status
        world.code = crypto.decrypt(reward.code_encrypted)
        world.pin = crypto.decrypt(reward.pin_encrypted) if getattr(reward, "pin_encrypted", None) else ""
        physical_reward = Reward.objects.select_related("shipment").get(pk=world.physical_reward_id)
        world.shipment_id = str(physical_reward.shipment.id)
    connection.set_schema_to_public()
    return world


def _batch(api, shop) -> str:
    """A bulk CSV batch, previewed (dry run), if the batches app is installed."""
    from django.apps import apps

    if not apps.is_installed("batches"):
        return ""
    from testsupport.batches import csv_bytes, digital_rows, upload

    response = upload(api, csv_bytes(digital_rows(shop.coffee_usd, 2, amount="10")), dry_run=True)
    assert response.status_code in (200, 201, 202), response.content
    return response.json()["id"]


def schema_fingerprint(tenant) -> dict[str, str]:
    """{table: md5 of all its rows} for every table in the tenant's schema."""
    schema = tenant.schema_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE' "
            "ORDER BY table_name",
            [schema],
        )
        tables = [row[0] for row in cursor.fetchall()]
        fingerprint = {}
        for table in tables:
            cursor.execute(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{schema}\".\"{table}\" t"
            )
            fingerprint[table] = cursor.fetchone()[0]
    return fingerprint
