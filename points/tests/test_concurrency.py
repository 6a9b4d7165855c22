"""200 concurrent redemptions against one person's balance, over real HTTP: never overdrawn, books balance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from django.db import connection
from django_tenants.utils import tenant_context

from funds.services import funds_deposit
from orders.models import Order
from programs.services import program_create
from tenants.services import api_key_create
from testsupport.api import http_json
from testsupport.catalog import make_shop
from testsupport.funds import balances

from .conftest import ACTOR, KUDOS, books_violations, make_person

CLIENTS = 24


def test_200_concurrent_redemptions_against_points_for_50(committed_tenant, live_http):
    from points.services import points_award

    connection.set_schema_to_public()
    _, key = api_key_create(tenant=committed_tenant)
    shop = make_shop()
    person = make_person(committed_tenant, "E-9")
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="600.00")
        program = program_create(slug="kudos", name="Kudos", points=KUDOS)
        for number in range(5):  # 5 awards of 10,000 points: 50 rewards of 10.00, spent across awards
            points_award(program=program, person=person, points=10_000, external_id=f"a{number}", actor=ACTOR)
    body = {"program": "kudos", "product_id": str(shop.coffee_usd.id), "amount": "10.00", "currency": "USD"}

    def redeem(_):
        return http_json("POST", f"{live_http}/api/v1/people/{person.id}/points/redemptions", key=key, body=body)

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(redeem, range(200)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(201) == 50, sorted(set(statuses))
    assert all(b["code"] == "insufficient_points" for s, b, _ in results if s != 201)
    with tenant_context(committed_tenant):
        assert Order.objects.count() == 50
        # 500.00 went to the rewards' holds (or was captured), 100.00 was never touched by points.
        assert balances("USD")[2] == Decimal("100.00")
    assert books_violations(committed_tenant) == []


def test_concurrent_awards_over_http_hold_at_commit_and_refuse_what_funds_do_not_cover(committed_tenant, live_http):
    """Awards over the API own their COMMIT, so their holds are posted during it (as orders' are): 60 concurrent
    awards for one person against money for 50 make 50 awards and 10 answers of 402 insufficient_funds that
    change nothing; a retry by external_id returns the same award; an award crossing the low-balance threshold
    still records balance.low."""
    from funds.models import HoldPostingAtCommit
    from funds.services import funds_set_low_balance_threshold
    from points.models import PointsAward
    from points.services import person_balance
    from webhooks.models import Event

    connection.set_schema_to_public()
    _, key = api_key_create(tenant=committed_tenant)
    person = make_person(committed_tenant, "E-3")
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="50.00")
        program = program_create(slug="kudos", name="Kudos", points=KUDOS)
    url = f"{live_http}/api/v1/points/awards"

    def award(external_id, points=100):
        body = {"person_external_id": "E-3", "program": "kudos", "points": points, "external_id": external_id}
        return http_json("POST", url, key=key, body=body)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(award, [f"c{number}" for number in range(60)]))
    statuses = [status for status, _, _ in results]
    assert (statuses.count(201), statuses.count(402)) == (50, 10), sorted(set(statuses))
    assert all(b["code"] == "insufficient_funds" for s, b, _ in results if s == 402)
    first = next(b for s, b, _ in results if s == 201)
    status, again, _ = award(first["external_id"])
    assert (status, again["id"]) == (200, first["id"])
    with tenant_context(committed_tenant):
        assert PointsAward.objects.count() == 50
        assert person_balance(program=program, person_id=person.pk) == 5_000
        assert balances("USD") == (Decimal("50.00"), Decimal("50.00"), 0)
        assert HoldPostingAtCommit.objects.count() == 0
        funds_deposit(currency="USD", amount="10.00")
        funds_set_low_balance_threshold(currency="USD", threshold="5.00")
    status, body, _ = award("low", points=600)
    assert (status, body["balance"]) == (201, 5_600)
    with tenant_context(committed_tenant):
        assert [e.data["available"] for e in Event.objects.filter(type="balance.low")] == ["4.00"]
    assert books_violations(committed_tenant) == []
