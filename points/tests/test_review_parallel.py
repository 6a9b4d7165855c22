"""Twenty at once, over real HTTP against committed data (the suite's Celery worker may join in, as in production):
cancels of one free discount, merchant reports of one discount code, confirms of one points file. Each happens
once; the funds and points ledgers balance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from batches.models import BatchHold
from batches.processing import batch_process
from catalog.services import brand_upsert, product_create
from fulfillment.models import DiscountRedemption
from fulfillment.services import reward_fulfil
from funds.models import LedgerTransaction
from funds.services import funds_deposit
from points.models import PointsAward
from programs.services import program_create
from tenants.services import api_key_create, partner_key_create
from testsupport.api import http_json
from testsupport.funds import balances
from testsupport.orders import digital_order
from testsupport.waiting import wait_for

from .conftest import KUDOS, books_violations, make_person

AT_ONCE = 20


def _all_at_once(call) -> list[tuple[int, dict]]:
    with ThreadPoolExecutor(AT_ONCE) as pool:
        return [(status, body) for status, body, _ in pool.map(lambda _: call(), range(AT_ONCE))]


def test_twenty_at_once_on_free_discounts_codes_and_points_files(committed_tenant, live_http):
    connection.set_schema_to_public()
    _, key = api_key_create(tenant=committed_tenant)
    _, merchant_key = partner_key_create(tenant=committed_tenant, name="Kedai", scope="discounts:report")
    free = product_create(
        brand=brand_upsert(slug=f"kedai-{committed_tenant.slug}", name="Kedai"), name="Kedai 10% off",
        type="discount", currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="10", zero_cost=True,
    )  # fmt: skip
    for number in range(3):
        make_person(committed_tenant, f"E-{number}")
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
        program_create(slug="kudos", name="Kudos", points=KUDOS)
        ledger_before = LedgerTransaction.objects.count()

    # 20 cancels of one scheduled free discount: one cancels it, the rest find it canceled; no money moves.
    later = digital_order(free, "10.00")
    later["rewards"][0]["deliver_at"] = (timezone.now() + timedelta(days=2)).isoformat()
    status, order, _ = http_json("POST", f"{live_http}/api/v1/orders", key=key, body=later)
    assert status == 201, order
    reward_id = order["rewards"][0]["id"]
    cancels = _all_at_once(lambda: http_json("POST", f"{live_http}/api/v1/rewards/{reward_id}/cancel", key=key))
    assert sorted(s for s, _ in cancels) == [200] + [409] * (AT_ONCE - 1), cancels
    with tenant_context(committed_tenant):
        assert LedgerTransaction.objects.count() == ledger_before

    # 20 reports of one code by the merchant's system (a retry storm): recorded once, the rest are replays.
    now_body = digital_order(free, "10.00")
    now_body["rewards"][0]["delivery_method"] = "api"
    status, order, _ = http_json("POST", f"{live_http}/api/v1/orders", key=key, body=now_body)
    reward_id = order["rewards"][0]["id"]
    with tenant_context(committed_tenant):
        reward_fulfil(reward_id=reward_id)  # here, or already by the suite's worker (it is idempotent)
    wait_for(lambda: http_json("GET", f"{live_http}/api/v1/rewards/{reward_id}", key=key)[1]["status"] == "delivered",
             timeout=60, message="the discount is delivered")  # fmt: skip
    code = http_json("POST", f"{live_http}/api/v1/rewards/{reward_id}/reveal", key=key)[1]["code"]
    report = {"code": code, "order_amount": "40.00", "order_currency": "MYR", "redeemed_at": "2026-12-06T10:00:00Z"}
    reports = _all_at_once(lambda: http_json("POST", f"{live_http}/api/v1/discounts/redemptions", key=merchant_key,
                                             body=report))  # fmt: skip
    assert sorted(s for s, _ in reports) == [200] * (AT_ONCE - 1) + [201], reports
    with tenant_context(committed_tenant):
        assert DiscountRedemption.objects.count() == 1
        assert LedgerTransaction.objects.count() == ledger_before

    # 20 confirms of one points file: one hold for its value, every row awarded once.
    from django.core.files.uploadedfile import SimpleUploadedFile

    from testsupport.api import ApiClient

    file = SimpleUploadedFile("kudos.csv", b"person_external_id,points\nE-0,1000\nE-1,500\nE-2,250\n")
    uploaded = ApiClient(key, None)._client.post("/api/v1/points/awards/import", {"program": "kudos", "file": file})
    status, batch = uploaded.status_code, uploaded.json()
    assert status == 201, batch
    confirms = _all_at_once(lambda: http_json("POST", f"{live_http}/api/v1/batches/{batch['id']}/confirm", key=key))
    assert {s for s, _ in confirms} <= {200, 202} and len(confirms) == AT_ONCE, confirms
    with tenant_context(committed_tenant):
        assert BatchHold.objects.filter(batch_id=batch["id"]).count() == 1
        batch_process(batch_id=batch["id"])  # here, or by the suite's worker: chunks never award a row twice
        wait_for(lambda: PointsAward.objects.count() == 3, timeout=60, message="the rows are awarded")
        assert balances("USD")[1] == Decimal("17.50")  # exactly the file's value, held once
    assert books_violations(committed_tenant) == []
