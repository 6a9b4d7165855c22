"""Discount codes from a merchant's pool, end to end: the operator imports the pool (inventory supplier), rewards
draw from it, the recipient's email carries a code from the pool, the codes are encrypted at rest and in no log
line, and an empty pool is a clear refusal that changes nothing (an order, a bulk preview)."""

from __future__ import annotations

import logging
import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import tenant_context

from catalog.models import InventoryCode
from catalog.services import brand_upsert, product_create, supplier_upsert
from fulfillment.services import reward_fulfil
from funds.models import LedgerTransaction
from funds.selectors import ledger_invariant_violations
from orders.models import Order, Reward
from testsupport.batches import csv_bytes, digital_rows, upload
from testsupport.funds import balances
from testsupport.orders import digital_order
from testsupport.problems import assert_problem


@pytest.fixture
def smtp(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    return smtp_server


@pytest.fixture
def pool(db, tmp_path, capsys):
    """Kedai Kopi's 20% off (face value 10.00 USD) with a pool of three codes imported by the operator's CLI."""
    tag = uuid.uuid4().hex[:6]
    supplier = supplier_upsert(code=f"kedai-pool-{tag}", name="Kedai Kopi codes", kind="inventory")
    product = product_create(
        brand=brand_upsert(slug=f"kedai-kopi-{tag}", name="Kedai Kopi"), name="Kedai Kopi 20% off",
        type="discount", currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="20", valid_until=date(2027, 6, 30), supplier=supplier,
    )  # fmt: skip
    codes = [f"KOPI-{tag.upper()}-{n:04d}" for n in (1, 2, 3)]
    path = tmp_path / "kedai-kopi.csv"
    path.write_text("code,denomination\n" + "".join(f"{code},10.00\n" for code in codes), encoding="utf-8")
    call_command("inventory_import", supplier.code, str(product.id), str(path), batch="MERCHANT-2026-12")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "3"
    return product, codes


def _money(tenant) -> tuple[Decimal, Decimal, int]:
    with tenant_context(tenant):
        assert ledger_invariant_violations() == []
        _, held, available = balances("USD")
        return available, held, LedgerTransaction.objects.count()


def _stock(product) -> dict[str, int]:
    connection.set_schema_to_public()
    counts: dict[str, int] = {}
    for status in InventoryCode.objects.filter(product=product).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def test_pool_discounts_reach_recipients_encrypted_and_unlogged_and_an_empty_pool_refuses_cleanly(
    api_a, funded_a, pool, smtp, caplog
):
    product, codes = pool
    caplog.set_level(logging.DEBUG)
    with connection.cursor() as cursor:  # what a database dump would show: no code in clear
        cursor.execute("SELECT code_encrypted, code_last4 FROM catalog_inventorycode WHERE product_id = %s",
                       [product.id])  # fmt: skip
        stored = cursor.fetchall()
    assert len(stored) == 3 and not any(code in encrypted for encrypted, _ in stored for code in codes)

    body = digital_order(product, "10.00")
    body["rewards"][0]["recipient"] = {"name": "Siti Aminah", "email": "siti@kedai.example"}
    emailed = api_a.post("/api/v1/orders", body)
    assert emailed.status_code == 201, emailed.content
    [reward] = emailed.json()["rewards"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward["id"])
        kept = Reward.objects.get(pk=reward["id"])
    assert kept.status == "delivered", (kept.status, kept.failure_reason)
    [mail] = [t for t, m in zip(smtp.texts(), smtp.messages, strict=True) if m["to"] == ["siti@kedai.example"]]
    [sent_code] = [code for code in codes if code in mail]  # one code of the pool, in her email
    assert "20% off at Kedai Kopi" in mail
    assert kept.code_encrypted and sent_code not in kept.code_encrypted and kept.code_last4 == sent_code[-4:]

    by_api = digital_order(product, "10.00", rewards=[{**digital_order(product, "10.00")["rewards"][0],
                                                        "delivery_method": "api", "quantity": 2}])  # fmt: skip
    drawn = api_a.post("/api/v1/orders", by_api)
    assert drawn.status_code == 201, drawn.content
    revealed = set()
    with tenant_context(funded_a):
        for each in drawn.json()["rewards"]:
            reward_fulfil(reward_id=each["id"])
    for each in drawn.json()["rewards"]:
        revealed.add(api_a.post(f"/api/v1/rewards/{each['id']}/reveal").json()["code"])
    assert revealed | {sent_code} == set(codes)  # three rewards, three different codes: the whole pool
    assert _stock(product) == {"issued": 3}

    before = _money(funded_a)
    with tenant_context(funded_a):
        orders_before = Order.objects.count()
    refused = api_a.post("/api/v1/orders", digital_order(product, "10.00"))
    assert_problem(refused, 422, "out_of_stock")
    assert refused.json()["detail"] == "Out of stock: no 10.00 USD codes are left for Kedai Kopi 20% off."
    assert refused.json()["errors"] == {"rewards[0].product_id": [refused.json()["detail"]]}
    file_refused = upload(api_a, csv_bytes(digital_rows(product, 2, domain="pool.example")))
    assert_problem(file_refused, 422, "no_valid_rows")
    assert file_refused.json()["errors"] == {f"rows[{n}].amount": [refused.json()["detail"]] for n in (2, 3)}
    assert _money(funded_a) == before
    with tenant_context(funded_a):
        assert Order.objects.count() == orders_before
    assert _stock(product) == {"issued": 3}

    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert not any(code in logged for code in codes)  # never a code in a log line, not even the last one drawn


def test_a_file_asking_more_codes_than_the_pool_holds_names_the_rows_beyond_it(api_a, funded_a, pool):
    product, _ = pool
    preview = upload(api_a, csv_bytes(digital_rows(product, 5, domain="many.example"))).json()
    assert (preview["valid_rows"], preview["error_rows"], preview["total_cost"]) == (3, 2, {"USD": "30.00"})
    response = api_a.get(f"/api/v1/batches/{preview['id']}/errors.csv")
    errors = b"".join(response.streaming_content).decode()
    assert errors.count("Out of stock: only 0") == 0 and errors.count("no 10.00 USD codes are left") == 2
    assert _money(funded_a)[:2] == (Decimal("1000.00"), Decimal("0"))
