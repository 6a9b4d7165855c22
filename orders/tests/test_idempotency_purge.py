"""Idempotency-Key outcomes are forgotten after IDEMPOTENCY_KEY_TTL_HOURS by the hourly beat task."""

from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context

from orders.models import IdempotencyRecord
from orders.tasks import idempotency_purge_task
from testsupport.orders import digital_order


def test_old_outcomes_are_purged_in_every_schema_and_fresh_ones_kept(api_a, api_b, funded_a, tenant_b, shop):
    from funds.services import funds_deposit

    with tenant_context(tenant_b):
        funds_deposit(currency="USD", amount="100.00")
    old = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY="old-key")
    fresh = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY="fresh-key")
    other = api_b.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY="old-key")
    assert old.status_code == fresh.status_code == other.status_code == 201
    long_ago = timezone.now() - timedelta(hours=49)
    for tenant in (funded_a, tenant_b):
        with tenant_context(tenant):
            IdempotencyRecord.objects.filter(key="old-key").update(created_at=long_ago)

    assert idempotency_purge_task() == 2

    with tenant_context(funded_a):
        assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh-key"]
    with tenant_context(tenant_b):
        assert not IdempotencyRecord.objects.exists()
    replay = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY="fresh-key")
    assert replay["Idempotent-Replayed"] == "true"


def test_beat_runs_the_purge_hourly_on_a_registered_task(settings):
    """The schedule is what makes the purge happen: beat's entry names a task the workers know."""
    from rewards_portal.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["idempotency-purge"]
    assert entry["task"] == "orders.tasks.idempotency_purge_task" and entry["schedule"] == 3600.0
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert settings.IDEMPOTENCY_KEY_TTL >= timedelta(hours=24)  # "kept at least 24 hours" (docs/api.md)


def test_a_schema_is_visited_once_its_oldest_record_is_due_and_never_purged_early(
    api_a, funded_a, tenant_b, shop, settings, monkeypatch
):
    from freezegun import freeze_time

    from core.db import connection
    from orders import idempotency
    from tenants.due import IDEMPOTENCY
    from tenants.models import TenantDueEvent

    entered: list[str] = []
    purge = idempotency.idempotency_purge

    def spying_purge(**kwargs) -> int:
        entered.append(connection.schema_name)
        return purge(**kwargs)

    monkeypatch.setattr(idempotency, "idempotency_purge", spying_purge)
    assert api_a.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY="k1").status_code == 201

    assert idempotency_purge_task() == 0  # the new record noted alpha: visited, nothing old enough
    assert entered == [funded_a.schema_name]  # beta and the sandbox twins have no records: not entered
    with tenant_context(funded_a):
        created = IdempotencyRecord.objects.get(key="k1").created_at
    due = created + settings.IDEMPOTENCY_KEY_TTL
    events = TenantDueEvent.objects.filter(kind=IDEMPOTENCY, schema_name=funded_a.schema_name)
    assert list(events.values_list("due_at", flat=True)) == [due]

    entered.clear()
    with freeze_time(due - timedelta(minutes=1)):
        assert idempotency_purge_task() == 0 and entered == []  # not due yet: not entered
    with freeze_time(due + timedelta(seconds=1)):
        assert idempotency_purge_task() == 1
    assert entered == [funded_a.schema_name]
    with tenant_context(funded_a):
        assert not IdempotencyRecord.objects.exists()
    assert not events.exists()  # nothing left to purge: not visited until a new record
