"""Reports as finance reads them: spend equals the ledger to the cent over random orders, whichever way it is
grouped and whether or not the rollups were compacted; the funnel counts every reward once; CSV and XLSX carry
the same figures; another tenant's report shows nothing of ours."""

import csv
import io
import random
from decimal import Decimal

from django.utils import timezone
from django_tenants.utils import tenant_context
from freezegun import freeze_time
from openpyxl import load_workbook

from fulfillment.services import reward_fulfil
from funds.models import LedgerAccount, LedgerTransaction
from funds.selectors import ledger_invariant_violations
from orders.models import Reward
from orders.rollups import rollups_compact
from programs.services import program_create
from tenants.models import Tenant
from testsupport.orders import digital_order
from testsupport.problems import assert_problem


def _spent(currency="USD") -> Decimal:
    return LedgerAccount.objects.get(currency=currency, kind="spent").balance


def _ledger_net_spend() -> Decimal:
    net = Decimal(0)
    for kind, amount in LedgerTransaction.objects.filter(kind__in=["capture", "refund"]).values_list("kind", "amount"):
        net += amount if kind == "capture" else -amount
    return net


def _random_orders(api, tenant, shop, rng: random.Random) -> None:
    with tenant_context(tenant):
        programs = [program_create(slug=f"p{i}", name=f"Program {i}") for i in range(2)]
    for index in range(12):
        body = digital_order(shop.coffee_usd, rng.choice(["10.00", "25.00", "50.00"]))
        body["rewards"][0]["delivery_method"] = "api"
        body["rewards"][0]["quantity"] = rng.randint(1, 2)
        body["rewards"][0]["metadata"] = {"department": rng.choice(["Sales", "Ops"])} if rng.random() < 0.7 else {}
        if rng.random() < 0.6:
            body["program"] = rng.choice(programs).slug
        response = api.post("/api/v1/orders", body)
        assert response.status_code == 201, response.content
        for reward in response.json()["rewards"]:
            fate = rng.random()
            if fate < 0.6:
                with tenant_context(tenant):
                    reward_fulfil(reward_id=reward["id"])
                if fate < 0.15:  # delivered, then canceled: the code is voided and the money refunded
                    assert api.post(f"/api/v1/rewards/{reward['id']}/cancel").status_code == 200
            elif fate < 0.75:
                assert api.post(f"/api/v1/rewards/{reward['id']}/cancel").status_code == 200
        if index == 6:
            with tenant_context(tenant):
                rollups_compact()  # half folded in, half still pending deltas: readers add both


def test_spend_and_funnel_equal_the_ledger_over_random_orders(api_a, api_b, funded_a, tenant_b, shop):
    _random_orders(api_a, funded_a, shop, random.Random(17))
    today = timezone.now().date().isoformat()
    with tenant_context(funded_a):
        spent, net = _spent(), _ledger_net_spend()
        statuses = {}
        for status in Reward.objects.values_list("status", flat=True):
            statuses[status] = statuses.get(status, 0) + 1
        assert ledger_invariant_violations() == []
    assert spent == net and spent > 0
    for group_by in ["program", "product", "currency", "day", "department"]:
        report = api_a.get("/api/v1/reports/spend", {"from": today, "to": today, "group_by": group_by}).json()
        assert report["totals"] == [{"currency": "USD", "amount": f"{spent:.2f}"}], group_by
        assert sum(Decimal(row["amount"]) for row in report["rows"]) == spent, group_by
    by_program = api_a.get("/api/v1/reports/spend", {"group_by": "program"}).json()
    assert {row["label"] for row in by_program["rows"]} <= {"Program 0", "Program 1", "No program"}

    funnel = api_a.get("/api/v1/reports/rewards", {"from": today, "to": today}).json()
    assert funnel["by_status"] == {**{s: 0 for s in funnel["by_status"]}, **statuses}
    assert funnel["created"] == sum(statuses.values())
    assert funnel["delivered"] == statuses.get("delivered", 0)
    assert funnel["rates"]["delivery_rate"] == (1.0 if funnel["sent"] else None)

    with tenant_context(funded_a):
        rollups_compact()
    again = api_a.get("/api/v1/reports/spend", {"group_by": "day"}).json()
    assert again["totals"] == [{"currency": "USD", "amount": f"{spent:.2f}"}]
    assert api_b.get("/api/v1/reports/spend").json()["rows"] == []
    assert api_b.get("/api/v1/reports/rewards").json()["created"] == 0


def test_report_files_carry_the_same_figures(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "25.00")
    body["rewards"][0]["delivery_method"] = "api"
    reward = api_a.post("/api/v1/orders", body).json()["rewards"][0]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward["id"])
    response = api_a.get("/api/v1/reports/spend", {"group_by": "currency", "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["currency", "label", "currency", "amount", "captures", "refunds"]
    assert rows[1][2:5] == ["USD", "25.00", "1"] and rows[-1][:4] == ["total", "", "USD", "25.00"]
    response = api_a.get("/api/v1/reports/rewards", {"format": "xlsx"})
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert values["created"] == 1 and values["delivered"] == 1 and values["delivery_rate"] == 1


def test_bad_report_parameters_are_refused(api_a, funded_a):
    assert_problem(api_a.get("/api/v1/reports/spend", {"group_by": "brand"}), 400, "validation_error")
    assert_problem(api_a.get("/api/v1/reports/spend", {"from": "2026-13-01"}), 400, "validation_error")
    assert_problem(
        api_a.get("/api/v1/reports/rewards", {"from": "2026-02-01", "to": "2026-01-01"}), 400, "validation_error"
    )
    assert_problem(api_a.get("/api/v1/reports/rewards", {"format": "pdf"}), 400, "validation_error")


def test_reports_read_days_in_the_tenants_time_zone(api_a, funded_a, shop):
    # 20:30 UTC on 1 March is 04:30 on 2 March in Kuala Lumpur (UTC+8): the company's 2 March.
    Tenant.objects.filter(pk__in=[funded_a.pk, funded_a.sandbox.pk]).update(timezone="Asia/Kuala_Lumpur")
    with freeze_time("2026-03-01 20:30:00", tick=True):
        body = digital_order(shop.coffee_usd, "25.00")
        body["rewards"][0]["delivery_method"] = "api"
        reward = api_a.post("/api/v1/orders", body).json()["rewards"][0]
        with tenant_context(funded_a):
            reward_fulfil(reward_id=reward["id"])
    local = api_a.get("/api/v1/reports/spend", {"from": "2026-03-02", "to": "2026-03-02", "group_by": "day"}).json()
    assert local["timezone"] == "Asia/Kuala_Lumpur"
    assert [(row["key"], row["amount"]) for row in local["rows"]] == [("2026-03-02", "25.00")]
    utc_day = api_a.get("/api/v1/reports/spend", {"from": "2026-03-01", "to": "2026-03-01"}).json()
    assert utc_day["rows"] == [] and utc_day["totals"] == []
    funnel = api_a.get("/api/v1/reports/rewards", {"from": "2026-03-02", "to": "2026-03-02"}).json()
    assert funnel["timezone"] == "Asia/Kuala_Lumpur" and funnel["created"] == 1 and funnel["delivered"] == 1
    assert api_a.get("/api/v1/reports/rewards", {"from": "2026-03-01", "to": "2026-03-01"}).json()["created"] == 0


def test_the_dashboards_all_time_counts_equal_the_rewards_however_folded(api_a, funded_a, shop, settings):
    """The dashboard reads all-time totals (a few rows), not one row per hour: they equal a count of the rewards
    before and after folding, and the hourly rebuild puts back totals an older compaction left behind."""
    from core.rollups import fold_deltas
    from orders.models import RewardStat, RewardStatDelta
    from orders.reports import reward_status_counts
    from orders.rollups import reward_totals_rebuild

    def counted() -> dict[str, int]:
        found: dict[str, int] = {}
        for status in Reward.objects.values_list("status", flat=True):
            found[status] = found.get(status, 0) + 1
        return found

    def shown() -> dict[str, int]:
        return {status: n for status, n in reward_status_counts().items() if n}

    _random_orders(api_a, funded_a, shop, random.Random(5))
    with tenant_context(funded_a):
        assert shown() == counted()
        rollups_compact()
        assert shown() == counted() and not RewardStatDelta.objects.exists()
        # A compaction by the code before this release folds into the hours only (a rolling deploy)…
        reward = Reward.objects.filter(status="pending").first() or Reward.objects.first()
        Reward.objects.filter(pk=reward.pk).update(status="canceled" if reward.status != "canceled" else "failed")
        fold_deltas(deltas=RewardStatDelta._meta.db_table, rollup=RewardStat._meta.db_table,
                    keys=["hour", "status", "currency", "engaged"], sums=["rewards", "amount"])  # fmt: skip
        assert shown() != counted()
        assert reward_totals_rebuild() is True  # …and the hourly rebuild puts the totals right
        assert shown() == counted()
        assert ledger_invariant_violations() == []
    entry = settings.CELERY_BEAT_SCHEDULE["reward-totals-rebuild"]
    assert entry["task"] == "orders.tasks.reward_totals_rebuild_task" and entry["schedule"] == 3600.0
