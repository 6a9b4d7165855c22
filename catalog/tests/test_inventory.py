"""Code inventory: all-or-nothing imports, duplicates refused, encrypted at rest, drawn once under concurrency."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import tenant_context

from accounts.models import User
from catalog.inventory import inventory_import_csv, inventory_stock
from catalog.models import InventoryCode, Product, Supplier
from catalog.services import brand_upsert, product_create, supplier_upsert
from core import crypto
from core.errors import ApplicationError
from fulfillment.suppliers import SupplierRejected, SupplierUnavailable, adapter_for
from testsupport.waiting import wait_for


def make_inventory_product(**config) -> tuple[Supplier, Product]:
    tag = uuid.uuid4().hex[:8]
    supplier = supplier_upsert(code=f"inv-{tag}", name="Prepaid stock", kind="inventory", config=config)
    brand = brand_upsert(slug=f"ember-{tag}", name="Ember Games")
    product = product_create(
        brand=brand, name=f"Ember Games {tag}", currency="USD", countries=["US"], denomination_type="fixed",
        denomination_values=["10", "25"], supplier=supplier,
    )  # fmt: skip
    return supplier, product


def write_csv(tmp_path, lines: list[str], name: str = "codes.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def codes_csv(tmp_path, count: int, *, denomination: str = "10", prefix: str | None = None, name: str = "codes.csv"):
    prefix = prefix or uuid.uuid4().hex[:6].upper()
    lines = ["code,pin,denomination"] + [f"{prefix}-CODE-{i:05d},{1000 + i},{denomination}" for i in range(count)]
    return write_csv(tmp_path, lines, name), [f"{prefix}-CODE-{i:05d}" for i in range(count)]


def test_import_stores_codes_encrypted_and_counts_stock(db, tmp_path):
    supplier, product = make_inventory_product()
    path = write_csv(tmp_path, ["code,pin,denomination", "GIFT-AAAA-1111,9876,10", "GIFT-BBBB-2222,,25.00",
                                "GIFT-CCCC-3333,5555,10"])  # fmt: skip
    result = inventory_import_csv(supplier=supplier, product=product, path=path, batch_label="PO-77")
    assert (result.imported, result.batch_label, result.by_denomination) == (3, "PO-77", {"10.00": 2, "25.00": 1})
    [ten, twenty_five] = inventory_stock(product=product)
    assert (ten.denomination, ten.available, ten.issued) == (Decimal("10.00"), 2, 0)
    assert (twenty_five.denomination, twenty_five.available) == (Decimal("25.00"), 1)
    with connection.cursor() as cursor:  # what a database dump would show
        cursor.execute(
            "SELECT code_encrypted || pin_encrypted || code_hash || code_last4 FROM catalog_inventorycode "
            "WHERE product_id = %s",
            [product.pk],
        )
        raw = " ".join(row[0] for row in cursor.fetchall())
    for secret in ("GIFT-AAAA-1111", "GIFTAAAA1111", "9876", "GIFT-BBBB-2222", "5555"):
        assert secret not in raw
    stored = InventoryCode.objects.get(product=product, code_last4="1111")
    assert crypto.decrypt(stored.code_encrypted) == "GIFT-AAAA-1111" and crypto.decrypt(stored.pin_encrypted) == "9876"
    assert stored.status == "available" and stored.reference is None and stored.batch_label == "PO-77"
    assert InventoryCode.objects.get(product=product, code_last4="2222").pin_encrypted == ""


def test_a_bad_file_imports_nothing_and_names_every_bad_row(db, tmp_path):
    supplier, product = make_inventory_product()
    path = write_csv(tmp_path, [
        "code,pin,denomination",
        "GOOD-0000-1234,1,10",    # row 2: fine
        " ,1,10",                 # row 3: blank code
        "GOOD-0000-5678,1,12",    # row 4: not a denomination of the product
        "good 0000 1234,2,25",    # row 5: same code as row 2 once normalised
        "GOOD-0000-9999,1,10.001",  # row 6: too many decimal places
        "GOOD-0000-8888,1,ten",   # row 7: not a number
    ])  # fmt: skip
    with pytest.raises(ApplicationError) as caught:
        inventory_import_csv(supplier=supplier, product=product, path=path, batch_label="x")
    error = caught.value
    assert error.code == "validation_error" and error.detail.startswith("5 bad row(s); nothing was imported.")
    assert [(e["row"], e["column"]) for e in error.errors["rows"]] == [
        (3, "code"), (4, "denomination"), (5, "code"), (6, "denomination"), (7, "denomination"),
    ]  # fmt: skip
    assert "duplicates row 2" in error.errors["rows"][2]["message"]
    assert "10.00, 25.00 USD" in error.errors["rows"][1]["message"]
    text = error.detail + str(error.errors)
    assert "GOOD-0000-1234" not in text and "good 0000 1234" not in text and "…1234" in text
    assert InventoryCode.objects.filter(product=product).count() == 0


def test_codes_already_stored_are_refused(db, tmp_path):
    supplier, product = make_inventory_product()
    inventory_import_csv(supplier=supplier, product=product, path=write_csv(tmp_path, ["code,denomination",
                         "abcd-efgh-4321,10"]), batch_label="first")  # fmt: skip
    again = write_csv(tmp_path, ["code,denomination", "NEW-CODE-0001,10", "ABCDEFGH4321,10"], name="again.csv")
    with pytest.raises(ApplicationError) as caught:
        inventory_import_csv(supplier=supplier, product=product, path=again, batch_label="second")
    assert caught.value.errors["rows"] == [
        {"row": 3, "column": "code", "message": f"Code …4321 is already stored for {supplier.code}."}
    ]
    assert InventoryCode.objects.filter(product=product).count() == 1


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["pin,denomination", "1,10"], "missing code"),
        (["code,denomination,colour", "A1,10,red"], "unknown colour"),
        (["code,pin,denomination"], "no codes"),
    ],
)
def test_file_level_problems(db, tmp_path, lines, message):
    supplier, product = make_inventory_product()
    with pytest.raises(ApplicationError) as caught:
        inventory_import_csv(supplier=supplier, product=product, path=write_csv(tmp_path, lines))
    assert caught.value.code == "validation_error" and message in caught.value.detail


def test_codes_only_go_to_an_inventory_supplier_of_the_product(db, tmp_path, shop):
    supplier, _ = make_inventory_product()
    path, _ = codes_csv(tmp_path, 1)
    with pytest.raises(ApplicationError) as caught:
        inventory_import_csv(supplier=supplier, product=shop.coffee_usd, path=path)
    assert caught.value.code == "supplier_mismatch"
    with pytest.raises(ApplicationError) as caught:
        inventory_import_csv(supplier=shop.coffee_usd.supplier, product=shop.coffee_usd, path=path)
    assert caught.value.code == "supplier_not_inventory"


def test_operator_command_prints_the_count(db, tmp_path):
    supplier, product = make_inventory_product()
    path, _ = codes_csv(tmp_path, 4)
    from io import StringIO

    out = StringIO()
    call_command("inventory_import", supplier.code, str(product.pk), str(path), "--batch", "PO-1", stdout=out)
    assert out.getvalue().strip() == "4"
    assert set(InventoryCode.objects.filter(product=product).values_list("batch_label", flat=True)) == {"PO-1"}
    with pytest.raises(CommandError, match="already stored"):
        call_command("inventory_import", supplier.code, str(product.pk), str(path))
    with pytest.raises(CommandError, match="No product"):
        call_command("inventory_import", supplier.code, "not-a-uuid", str(path))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("inventory_import", supplier.code, str(product.pk), str(tmp_path / "missing.csv"))


def test_admin_lists_codes_masked_with_stock_and_cannot_add_or_edit(db, tmp_path, client):
    supplier, product = make_inventory_product()
    path, codes = codes_csv(tmp_path, 3)
    inventory_import_csv(supplier=supplier, product=product, path=path, batch_label="PO-9")
    client.force_login(User.objects.create_superuser(email="operator@example.com", password="operator-password-1"))
    page = client.get("/admin/catalog/inventorycode/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "inventory-stock" in html and product.name in html and "••••••••0002" in html
    assert not any(code in html for code in codes)
    assert client.get("/admin/catalog/inventorycode/add/").status_code == 403
    one = InventoryCode.objects.filter(product=product).first()
    assert client.post(f"/admin/catalog/inventorycode/{one.pk}/change/", {"status": "void"}).status_code == 403
    detail = client.get(f"/admin/catalog/inventorycode/{one.pk}/change/").content.decode()
    assert crypto.decrypt(one.code_encrypted) not in detail and one.code_encrypted not in detail


def test_adapter_draws_from_a_tenant_schema_and_reissues_the_same_code(tenant_a, tmp_path):
    supplier, product = make_inventory_product()
    path, codes = codes_csv(tmp_path, 3)
    inventory_import_csv(supplier=supplier, product=product, path=path)
    adapter = adapter_for(supplier)
    with tenant_context(tenant_a):
        assert connection.schema_name == "alpha"
        with connection.cursor() as cursor:
            cursor.execute("SHOW search_path")
            assert "public" in cursor.fetchone()[0]  # how a tenant schema reaches the public inventory
        first = adapter.issue(product=product, amount=Decimal("10.00"), currency="USD", reference="reward-1")
        again = adapter.issue(product=product, amount=Decimal("10.00"), currency="USD", reference="reward-1")
        second = adapter.issue(product=product, amount=Decimal("10.00"), currency="USD", reference="reward-2")
        assert first.code == again.code == codes[0] and first.pin == "1000" and first.reference.startswith("inv_")
        assert second.code == codes[1]
        assert adapter.status(reference="reward-1") == "issued" and adapter.status(reference="nope") == "unknown"
        with pytest.raises(SupplierRejected, match="out of stock"):
            adapter.issue(product=product, amount=Decimal("25.00"), currency="USD", reference="reward-3")
        # A disclosed code cannot be taken back; one nobody saw goes back on the shelf.
        with pytest.raises(SupplierRejected, match="cannot be taken back"):
            adapter.void(reference="reward-1", disclosed=True)
        adapter.void(reference="reward-2", disclosed=False)
        assert adapter.status(reference="reward-2") == "unknown"
        with pytest.raises(SupplierRejected, match="no issued code"):
            adapter.void(reference="reward-2", disclosed=False)
        back = adapter.issue(product=product, amount=Decimal("10.00"), currency="USD", reference="reward-4")
        assert back.code == codes[1]
    issued = InventoryCode.objects.get(reference="reward-1")
    assert issued.status == "issued" and issued.issued_at is not None
    assert [line.available for line in inventory_stock(product=product)] == [1]


def test_empty_shelf_waits_for_restock_when_configured(tenant_a, tmp_path):
    supplier, product = make_inventory_product(wait_for_restock=True)
    with tenant_context(tenant_a), pytest.raises(SupplierUnavailable, match="waiting for restock"):
        adapter_for(supplier).issue(product=product, amount=Decimal("10"), currency="USD", reference="r-1")


def test_sandbox_twin_never_spends_real_codes(tenant_a, tmp_path):
    supplier, product = make_inventory_product()
    path, codes = codes_csv(tmp_path, 2)
    inventory_import_csv(supplier=supplier, product=product, path=path)
    with tenant_context(tenant_a.sandbox):
        issued = adapter_for(supplier).issue(product=product, amount=Decimal("10"), currency="USD", reference="sbx-1")
    assert issued.code not in codes and issued.reference.startswith("sbx_")
    assert [line.available for line in inventory_stock(product=product)] == [2]


def test_low_stock_alert_is_sent_once_a_day(tenant_a, tmp_path, caplog):
    supplier, product = make_inventory_product(low_stock_threshold=3)
    operator = User.objects.create_user(email="ops@example.com", is_staff=True)
    User.objects.create_user(email="not-an-operator@example.com")
    path, codes = codes_csv(tmp_path, 5)
    inventory_import_csv(supplier=supplier, product=product, path=path)
    adapter = adapter_for(supplier)
    with tenant_context(tenant_a):
        adapter.issue(product=product, amount=Decimal("10"), currency="USD", reference="r-1")  # 4 left
        adapter.issue(product=product, amount=Decimal("10"), currency="USD", reference="r-2")  # 3 left
        assert mail.outbox == []
        adapter.issue(product=product, amount=Decimal("10"), currency="USD", reference="r-3")  # 2 left: alert
        adapter.issue(product=product, amount=Decimal("10"), currency="USD", reference="r-4")  # 1 left: quiet
    [message] = mail.outbox
    assert message.to == [operator.email] and "2 left" in message.subject and product.name in message.subject
    assert supplier.code in message.body and str(product.pk) in message.body
    assert not any(code in message.body for code in codes)
    warnings = [r for r in caplog.records if getattr(r, "event", "") == "inventory.low_stock"]
    assert len(warnings) == 1 and warnings[0].available == 2


def _place_orders(live_http, key, product, count: int) -> list[str]:
    """The rewards of the orders placed. An order placed once the pool is seen empty is refused (422 out_of_stock,
    nothing held): in the full suite the session's Celery worker draws codes while the orders are still coming."""
    from testsupport.api import http_json
    from testsupport.orders import digital_order

    body = digital_order(product, "10.00")

    def place(index):
        status, order, _ = http_json("POST", f"{live_http}/api/v1/orders", key=key, body=body,
                                     headers={"Idempotency-Key": f"inv-order-{index}"})  # fmt: skip
        if status == 422 and order["code"] == "out_of_stock":
            return None
        assert status == 201, order
        return order["rewards"][0]["id"]

    with ThreadPoolExecutor(8) as pool:
        return [reward_id for reward_id in pool.map(place, range(count)) if reward_id is not None]


def test_inventory_codes_are_never_handed_out_twice_under_concurrent_orders(committed_tenant, live_http, tmp_path):
    """N codes, M > N orders fulfilled by 16 threads at once: N distinct codes out, the rest fail and
    release their holds, and the ledger balances."""
    from fulfillment.services import reward_fulfil
    from funds.models import Hold
    from funds.selectors import balance_get, ledger_invariant_violations
    from funds.services import funds_deposit
    from orders.models import Reward
    from tenants.services import api_key_create

    codes_count, orders_count, threads = 12, 40, 16
    connection.set_schema_to_public()
    supplier, product = make_inventory_product(low_stock_threshold=5)
    path, codes = codes_csv(tmp_path, codes_count)
    inventory_import_csv(supplier=supplier, product=product, path=path, batch_label="race")
    _, key = api_key_create(tenant=committed_tenant)
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="1000.00")
    try:
        reward_ids = _place_orders(live_http, key, product, orders_count)
        orders_count = len(reward_ids)  # at least codes_count: the pool cannot look empty before 12 draws

        def fulfil(reward_id):
            try:
                with tenant_context(committed_tenant):
                    reward_fulfil(reward_id=reward_id)
            finally:
                connection.close()

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fulfil, reward_ids))
        elapsed = time.perf_counter() - started
        print(f"\n{orders_count} rewards, {codes_count} codes, {threads} threads: {elapsed:.2f} s, "
              f"{orders_count / elapsed:.0f} fulfilments/s")  # fmt: skip

        with tenant_context(committed_tenant):
            # In the full suite the session's Celery worker also drains these rewards (the orders' own tasks):
            # a reward it has leased is skipped by the threads here and settled by the worker moments later.
            terminal = Reward.objects.filter(pk__in=reward_ids, status__in=["delivered", "failed"])
            wait_for(lambda: terminal.count() == orders_count, timeout=60, message="every reward settled")
            rewards = list(Reward.objects.filter(pk__in=reward_ids).select_related("hold"))
            delivered = [r for r in rewards if r.status == "delivered"]
            failed = [r for r in rewards if r.status == "failed"]
            assert (len(delivered), len(failed)) == (codes_count, orders_count - codes_count)
            handed_out = [crypto.decrypt(r.code_encrypted) for r in delivered]
            assert sorted(handed_out) == sorted(codes)  # every code once, no code twice
            assert all("out of stock" in r.failure_reason and r.hold.status == "released" for r in failed)
            assert all(r.hold.status == "captured" for r in delivered)
            assert Hold.objects.filter(status="pending").count() == 0
            balance = balance_get(currency="USD")
            assert (balance.posted, balance.held) == (Decimal("1000") - 10 * codes_count, 0)
            assert ledger_invariant_violations() == []
        connection.set_schema_to_public()
        rows = InventoryCode.objects.filter(supplier=supplier)
        assert rows.filter(status="issued").count() == codes_count
        references = list(rows.values_list("reference", flat=True))
        assert len(set(references)) == len(references) == codes_count
        assert set(references) == {str(r.id) for r in delivered}
    finally:
        connection.set_schema_to_public()
        InventoryCode.objects.filter(supplier=supplier).delete()


def test_parallel_draws_take_distinct_codes(committed_tenant, tmp_path):
    """The draw alone, 16 threads at once on committed rows: every code out exactly once, then out of stock."""
    codes_count, threads = 400, 16
    connection.set_schema_to_public()
    supplier, product = make_inventory_product(low_stock_threshold=0)
    path, codes = codes_csv(tmp_path, codes_count)
    inventory_import_csv(supplier=supplier, product=product, path=path)
    adapter = adapter_for(supplier)

    def drain(worker: int) -> list[str | None]:
        """One worker: draw until the shelf is empty (one connection per thread, as in a worker pool)."""
        drawn: list[str | None] = []
        try:
            with tenant_context(committed_tenant):
                for attempt in range(codes_count):
                    try:
                        issued = adapter.issue(
                            product=product, amount=Decimal("10"), currency="USD", reference=f"d-{worker}-{attempt}"
                        )
                    except SupplierRejected:
                        drawn.append(None)
                        break
                    drawn.append(issued.code)
        finally:
            connection.close()
        return drawn

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            drawn = [code for batch in pool.map(drain, range(threads)) for code in batch]
        elapsed = time.perf_counter() - started
        print(
            f"\n{codes_count} codes drawn by {threads} threads in {elapsed:.2f} s: {codes_count / elapsed:.0f} draws/s"
        )
        got = [code for code in drawn if code is not None]
        assert sorted(got) == sorted(codes) and drawn.count(None) == threads  # each worker ends on an empty shelf
    finally:
        connection.set_schema_to_public()
        InventoryCode.objects.filter(supplier=supplier).delete()
