"""Claim links past their claim-by date: the beat sweep expires them once and gives back exactly the value that
never left the vault (orders.expiry), whatever the program's policy and however many sweeps run at once."""

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from catalog.models import Supplier
from catalog.services import brand_upsert, product_create
from fulfillment.services import reward_fulfil
from funds.models import LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Reward, RewardExpiry
from orders.tasks import rewards_expire_task
from programs.services import program_create
from tenants.services import api_key_create
from testsupport.api import ApiClient
from testsupport.catalog import make_shop
from testsupport.orders import link_order
from testsupport.portal import make_staff, portal_client, sign_in
from webhooks.models import Event


def _send(api, tenant, product, *, program=None, **overrides) -> Reward:
    body = link_order(product, **overrides) | ({"program": program} if program else {})
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    reward_id = response.json()["rewards"][0]["id"]
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward_id)
        return Reward.objects.select_related("hold").get(pk=reward_id)


def _past_due(tenant, *rewards: Reward) -> None:
    """The clock, injected through the data: these links' claim-by moment has just passed."""
    with tenant_context(tenant):
        Reward.objects.filter(pk__in=[r.pk for r in rewards]).update(
            claim_expires_at=timezone.now() - timedelta(seconds=1)
        )


def test_expiry_returns_only_value_that_never_left_the_vault_once(api_a, funded_a, shop):
    choice = product_create(
        brand=brand_upsert(slug="pick-anything-x", name="Pick Anything"), name="Pick Anything USD", type="choice",
        currency="USD", countries=["US"], denomination_type="range", denomination_min="5", denomination_max="100",
        choice_options=[shop.coffee_usd],
    )  # fmt: skip
    untouched = _send(api_a, funded_a, shop.coffee_usd, amount="25.00")
    revealed_by_sender = _send(api_a, funded_a, shop.coffee_usd, amount="10.00")
    assert api_a.post(f"/api/v1/rewards/{revealed_by_sender.id}/reveal").status_code == 200
    unchosen = _send(api_a, funded_a, choice, amount="30.00")
    claimed = _send(api_a, funded_a, shop.coffee_usd, amount="50.00")
    token = api_a.get(f"/api/v1/rewards/{claimed.id}").json()["claim_url"].rsplit("/r/", 1)[1]
    from django.test import Client

    assert Client(HTTP_HOST="localhost").post(f"/r/{token}/reveal").status_code == 200
    later = _send(api_a, funded_a, shop.coffee_usd, amount="10.00")
    _past_due(funded_a, untouched, revealed_by_sender, unchosen, claimed)
    with tenant_context(funded_a):
        before = balance_get(currency="USD").available

    assert rewards_expire_task() == 3
    assert rewards_expire_task() == 0  # a second sweep finds nothing to do

    with tenant_context(funded_a):
        assert balance_get(currency="USD").available - before == Decimal("55.00")  # 25 voided + 30 never chosen
        statuses = dict(Reward.objects.values_list("pk", "status"))
        assert statuses[untouched.pk] == statuses[revealed_by_sender.pk] == statuses[unchosen.pk] == "expired"
        assert statuses[claimed.pk] == "redeemed" and statuses[later.pk] == "delivered"
        outcomes = dict(RewardExpiry.objects.values_list("reward_id", "outcome"))
        assert outcomes == {untouched.pk: "released", revealed_by_sender.pk: "spent", unchosen.pk: "released"}
        assert Reward.objects.get(pk=untouched.pk).code_encrypted == ""  # voided at the supplier, erased here
        assert Reward.objects.get(pk=revealed_by_sender.pk).code_encrypted != ""  # a disclosed code is spent
        assert LedgerTransaction.objects.filter(kind="refund", reference=f"reward:{untouched.pk}").count() == 1
        assert LedgerTransaction.objects.filter(kind="refund", reference=f"reward:{unchosen.pk}").count() == 1
        expired_events = Event.objects.filter(type="reward.expired")
        assert sorted(e.data["id"] for e in expired_events) == sorted(
            str(r.pk) for r in (untouched, revealed_by_sender, unchosen)
        )
        assert ledger_invariant_violations() == []
    # a cancel after expiry gets nothing more back
    assert api_a.post(f"/api/v1/rewards/{untouched.id}/cancel").status_code == 409
    # the Funds page shows the breakage: 55.00 back in 2 rewards, 10.00 stayed spent in 1
    staff = make_staff(funded_a, "finance.expiry@alpha.test", "finance")
    portal = portal_client(funded_a)
    sign_in(portal, staff.email)
    table = portal.get("/funds/").content.decode().split('data-testid="funds-breakage"')[1].split("</table>")[0]
    cells = re.findall(r'<td class="num[^"]*">([^<]+)</td>', table)
    assert cells == ["55.00 USD", "2", "10.00 USD", "1"]
    # and the breakage report says the same (one query, whatever the number of expiries)
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        report = api_a.get("/api/v1/reports/breakage").json()
    assert report == {"results": [{"currency": "USD", "released": "55.00", "released_count": 2, "kept": "10.00",
                                   "kept_count": 1}]}  # fmt: skip
    assert len([q for q in queries.captured_queries if "rewardexpiry" in q["sql"]]) == 1
    assert api_a.get("/api/v1/reports/breakage", {"to": "2020-01-01T00:00:00Z"}).json() == {"results": []}
    assert api_a.get("/api/v1/reports/breakage", {"from": "yesterday"}).status_code == 422


def test_keep_policy_and_a_refused_void_move_no_money(api_a, funded_a, shop):
    with tenant_context(funded_a):
        program_create(slug="keepers", name="Keepers", on_expiry="keep")
    kept = _send(api_a, funded_a, shop.coffee_usd, program="keepers")
    refused = _send(api_a, funded_a, shop.coffee_usd)
    Supplier.objects.filter(pk=shop.coffee_usd.supplier_id).update(config={"void": "refuse"})
    _past_due(funded_a, kept, refused)
    with tenant_context(funded_a):
        before = balance_get(currency="USD").available

    assert rewards_expire_task() == 2

    with tenant_context(funded_a):
        assert balance_get(currency="USD").available == before
        assert dict(RewardExpiry.objects.values_list("reward_id", "outcome")) == {kept.pk: "kept", refused.pk: "spent"}
        assert ledger_invariant_violations() == []


def test_void_unreachable_leaves_the_reward_for_the_next_sweep(api_a, funded_a, shop):
    reward = _send(api_a, funded_a, shop.coffee_usd)
    Supplier.objects.filter(pk=shop.coffee_usd.supplier_id).update(config={"void": "unavailable"})
    _past_due(funded_a, reward)

    assert rewards_expire_task() == 0
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward.pk).status == "delivered" and not RewardExpiry.objects.exists()

    Supplier.objects.filter(pk=shop.coffee_usd.supplier_id).update(config={})
    assert rewards_expire_task() == 1


def test_concurrent_sweeps_release_each_reward_exactly_once(committed_tenant):
    tenant = committed_tenant
    connection.set_schema_to_public()
    key, raw = api_key_create(tenant=tenant, scopes=["read", "write"])
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="500.00")
    api = ApiClient(raw, key)
    rewards = [_send(api, tenant, shop.coffee_usd, amount="10.00") for _ in range(12)]
    _past_due(tenant, *rewards)
    with tenant_context(tenant):
        before = balance_get(currency="USD").available

    def sweep(_):
        try:
            return rewards_expire_task()
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(sweep, range(4)))

    assert sum(counts) == 12
    with tenant_context(tenant):
        assert balance_get(currency="USD").available - before == Decimal("120.00")
        assert RewardExpiry.objects.filter(outcome="released").count() == 12
        assert LedgerTransaction.objects.filter(kind="refund").count() == 12
        assert ledger_invariant_violations() == []


def test_claim_by_comes_from_the_order_or_the_program(api_a, funded_a, shop):
    with tenant_context(funded_a):
        program_create(slug="quick", name="Quick", claim_days=14)
    deadline = (timezone.now() + timedelta(days=3)).replace(microsecond=0)

    by_program = api_a.post("/api/v1/orders", link_order(shop.coffee_usd) | {"program": "quick"})
    by_order = api_a.post("/api/v1/orders", link_order(shop.coffee_usd) | {"claim_by": deadline.isoformat()})
    in_the_past = api_a.post("/api/v1/orders", link_order(shop.coffee_usd, claim_by="2020-01-01T00:00:00Z"))
    on_a_code = api_a.post(
        "/api/v1/orders",
        {
            "type": "digital",
            "rewards": [{**link_order(shop.coffee_usd)["rewards"][0], "claim_by": deadline.isoformat()}],
        },
    )

    claim_by = by_program.json()["rewards"][0]["claim_by"]
    assert (
        timedelta(days=13, hours=23) < timezone.datetime.fromisoformat(claim_by) - timezone.now() <= timedelta(days=14)
    )
    assert timezone.datetime.fromisoformat(by_order.json()["rewards"][0]["claim_by"]) == deadline
    assert in_the_past.status_code == 422 and "rewards[0].claim_by" in in_the_past.json()["errors"]
    assert on_a_code.status_code == 422 and "claim links only" in on_a_code.json()["errors"]["rewards[0].claim_by"][0]
