"""The metrics snapshot recomputes only the tenant schemas written since the last one, and adds up to what a
full pass over every schema gives."""

from __future__ import annotations

from decimal import Decimal

from django_tenants.utils import tenant_context

from funds.models import AccountKind, LedgerAccount
from observability.snapshot import snapshot_compute
from testsupport.orders import digital_order

# Ages grow between two computations; everything else must be equal.
TIMING = ("computed_at", "compute_seconds", "schemas_visited", "full_pass")
AGES = ("delivery_lag_seconds", "webhook_oldest_due_seconds")


def _gauges(snapshot: dict) -> dict:
    return {key: value for key, value in snapshot.items() if key not in TIMING + AGES}


def test_a_change_in_one_schema_is_recomputed_there_only_and_adds_up_as_a_full_pass_does(
    api_a, funded_a, tenant_b, shop
):
    first = snapshot_compute(full=False)  # every schema without a share yet (none: the table starts empty)
    assert first["schemas_visited"] == first["tenant_schemas"] >= 4  # alpha, beta and their sandbox twins

    quiet = snapshot_compute(full=False)
    assert quiet["schemas_visited"] == 0  # nothing written: one query for notes, one for the shares
    assert _gauges(quiet) == _gauges(first)

    assert api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00")).status_code == 201
    after_order = snapshot_compute(full=False)
    assert after_order["schemas_visited"] == 1  # alpha's live schema, noted by the order's writes
    assert after_order["open_rewards"].get("live|pending", 0) == first["open_rewards"].get("live|pending", 0) + 1
    holds = Decimal(after_order["ledger"]["live|USD|holds"]) - Decimal(first["ledger"].get("live|USD|holds", "0"))
    assert holds == Decimal("25.00")
    assert after_order["delivery_lag_seconds"]["live"] > 0  # the new reward waits for a worker

    with tenant_context(funded_a):
        LedgerAccount.objects.filter(kind=AccountKind.CASH, currency="USD").update(
            low_balance_threshold=Decimal("5000.00")
        )
    after_threshold = snapshot_compute(full=False)
    assert after_threshold["schemas_visited"] == 1
    assert ["alpha", "USD"] in [list(pair) for pair in after_threshold["balance_low"]]

    full = snapshot_compute(full=True)
    assert full["schemas_visited"] == full["tenant_schemas"]
    assert _gauges(full) == _gauges(after_threshold)
    for ages in AGES:
        assert full[ages].keys() == after_threshold[ages].keys()
        assert all((full[ages][mode] > 0) == (after_threshold[ages][mode] > 0) for mode in full[ages])


def test_a_quiet_schemas_delivery_lag_keeps_growing_without_a_visit(api_a, funded_a, shop):
    assert api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00")).status_code == 201
    first = snapshot_compute(full=False)
    later = snapshot_compute(full=False)
    assert later["schemas_visited"] == 0
    assert later["delivery_lag_seconds"]["live"] > first["delivery_lag_seconds"]["live"]


def test_a_share_older_than_the_recompute_period_is_recomputed_without_a_note(funded_a, tenant_b, settings):
    """The safety net for a change no trigger saw: here a share made wrong by hand, as if written behind the
    triggers' back, is put right once it is older than METRICS_RECOMPUTE_SECONDS, a few shares per refresh."""
    from datetime import timedelta

    from django.utils import timezone

    from observability.models import SchemaGauges

    truth = snapshot_compute(full=False)
    wrong = dict(SchemaGauges.objects.get(schema_name=tenant_b.schema_name).gauges, open_rewards={"pending": 99})
    SchemaGauges.objects.filter(schema_name=tenant_b.schema_name).update(gauges=wrong)
    assert (
        snapshot_compute(full=False)["open_rewards"].get("live|pending", 0)
        == truth["open_rewards"].get("live|pending", 0) + 99
    )  # not noted, not old: kept as it is

    old = timezone.now() - timedelta(seconds=settings.METRICS_RECOMPUTE_SECONDS + 1)
    SchemaGauges.objects.filter(schema_name=tenant_b.schema_name).update(computed_at=old)
    healed = snapshot_compute(full=False)
    assert healed["schemas_visited"] == 1
    assert _gauges(healed) == _gauges(truth)


def test_the_shares_add_up_as_they_do_one_by_one(funded_a, tenant_a, tenant_b):
    """The refresh adds the stored shares up in SQL: the same sums, maxima and low-balance list as adding them one
    by one in Python (live and sandbox apart, low balances of live tenants only), on shares with every gauge set."""
    import time
    from collections import defaultdict

    from observability.models import SchemaGauges
    from tenants.models import Tenant

    snapshot_compute(full=False)
    moment = time.time()
    shares = {
        tenant_a.schema_name: {"open_rewards": {"pending": 3, "scheduled": 1}, "delivery_due_since": moment - 50.5,
                               "webhook_backlog": 4, "webhook_due_since": moment - 7.25,
                               "ledger": {"USD|cash": "100.1000", "USD|holds": "-0.0500"},
                               "balance_low": ["USD", "EUR"]},
        tenant_a.sandbox.schema_name: {"open_rewards": {"pending": 2}, "delivery_due_since": moment - 500.0,
                                       "webhook_backlog": 1, "webhook_due_since": None,
                                       "ledger": {"USD|cash": "1.0000"}, "balance_low": ["USD"]},
        tenant_b.schema_name: {"open_rewards": {"pending": 5, "processing": 2}, "delivery_due_since": moment + 3600,
                               "webhook_backlog": 0, "webhook_due_since": moment + 60,
                               "ledger": {"USD|cash": "0.9000", "EUR|cash": "12.0000"}, "balance_low": ["EUR"]},
    }  # fmt: skip
    for schema, gauges in shares.items():
        SchemaGauges.objects.filter(schema_name=schema).update(gauges=gauges)
    added = snapshot_compute(full=False)
    assert added["schemas_visited"] == 0

    # The same, one share at a time.
    open_rewards: dict[str, int] = defaultdict(int)
    ledger: dict[str, Decimal] = defaultdict(Decimal)
    backlog, low, lag, due_age = defaultdict(int), [], defaultdict(float), defaultdict(float)
    moment = added["computed_at"]
    for tenant in Tenant.objects.with_schema():
        share = SchemaGauges.objects.get(schema_name=tenant.schema_name).gauges
        mode = "sandbox" if tenant.is_sandbox else "live"
        for status, count in share["open_rewards"].items():
            open_rewards[f"{mode}|{status}"] += count
        for key, amount in share["ledger"].items():
            ledger[f"{mode}|{key}"] += Decimal(amount)
        backlog[mode] += share["webhook_backlog"]
        for since, ages in ((share["delivery_due_since"], lag), (share["webhook_due_since"], due_age)):
            if since is not None and since <= moment:
                ages[mode] = max(ages[mode], moment - since)
        if mode == "live":
            low.extend([tenant.slug, currency] for currency in share["balance_low"])
    assert added["open_rewards"] == dict(open_rewards)
    assert added["ledger"] == {key: str(value) for key, value in ledger.items()}
    assert added["webhook_backlog"] == {"live": backlog["live"], "sandbox": backlog["sandbox"]}
    assert sorted(map(list, added["balance_low"])) == sorted(low) and ["alpha", "EUR"] in low
    for mode in ("live", "sandbox"):  # ages: computed a moment apart
        assert abs(added["delivery_lag_seconds"][mode] - lag[mode]) < 1
        assert abs(added["webhook_oldest_due_seconds"][mode] - due_age[mode]) < 1
    assert added["delivery_lag_seconds"]["sandbox"] >= 500 and added["webhook_oldest_due_seconds"]["live"] >= 7.25
