"""A chunk writes its rewards set-based (COPY, no model instances): they must be the rewards an order through the
API creates for the same input — same columns, claim links that open, shipments, timeline, one pending hold each —
and a row whose product was withdrawn meanwhile fails alone, its charge released when the batch finishes."""

import io
from decimal import Decimal

from django_tenants.utils import tenant_context

from batches.csvfile import ALL_COLUMNS
from batches.models import Batch, BatchRow
from batches.processing import batch_process
from batches.selectors import batch_result_rows
from batches.upload import batch_upload
from catalog.models import Product
from core import crypto
from fulfillment.claim_links import claim_tenant_get
from fulfillment.models import Shipment
from funds.selectors import balance_get, ledger_invariant_violations
from orders.claim_tokens import claim_token_hash
from orders.models import Reward, RewardEvent
from testsupport.batches import csv_bytes
from testsupport.orders import US_ADDRESS

LATER = "2099-01-01T09:00:00Z"
COMPARED = [
    "status", "product_id", "product_snapshot", "amount", "currency", "charge_amount", "delivery_method",
    "recipient_name", "recipient_email", "recipient_phone", "country", "message", "sender_name", "deliver_at",
]  # fmt: skip


def _rows(shop) -> list[dict]:
    address = {"address_line1": US_ADDRESS["line1"], "city": US_ADDRESS["city"], "state": US_ADDRESS["state"],
               "postal_code": US_ADDRESS["postal_code"], "country": "US"}  # fmt: skip
    return [
        {"recipient_name": "Ada Lovelace", "recipient_email": "Ada@Example.com", "product_id": str(shop.coffee_usd.id),
         "amount": "25", "delivery_method": "email", "message": "Thank you!", "sender_name": "People Team",
         "deliver_at": LATER, "external_id": "digital"},
        {"recipient_name": "Alan Turing", "recipient_email": "alan@example.com", "product_id": str(shop.coffee_usd.id),
         "amount": "10", "delivery_method": "link", "deliver_at": LATER, "external_id": "link"},
        {"recipient_name": "Grace Hopper", "recipient_email": "grace@example.com",
         "product_id": str(shop.hamper_usd.id), "amount": "50", "shipping_method_id": str(shop.ground_us.id),
         "deliver_at": LATER, "external_id": "physical", **address},
        {"recipient_name": "Mary Somerville", "recipient_email": "mary@example.com",
         "product_id": str(shop.books_gbp.id), "amount": "20", "country": "GB", "deliver_at": LATER,
         "external_id": "fx"},
        {"recipient_name": "Withdrawn", "recipient_email": "w@example.com", "product_id": str(shop.mug_eur.id),
         "amount": "20", "shipping_method_id": str(shop.ground_eu.id), "address_line1": "1 Hauptstr.",
         "city": "Berlin", "postal_code": "10115", "country": "DE", "deliver_at": LATER, "external_id": "withdrawn"},
    ]  # fmt: skip


def _api_orders(api, shop) -> list[dict]:
    """The same four rewards as orders through the API."""
    reward = {"currency": "USD", "message": "", "sender_name": "", "deliver_at": LATER}
    bodies = [
        {"type": "digital", "rewards": [{**reward, "product_id": str(shop.coffee_usd.id), "amount": "25",
         "delivery_method": "email", "recipient": {"name": "Ada Lovelace", "email": "Ada@Example.com"},
         "message": "Thank you!", "sender_name": "People Team"}]},
        {"type": "link", "rewards": [{**reward, "product_id": str(shop.coffee_usd.id), "amount": "10",
         "delivery_method": "link", "recipient": {"name": "Alan Turing", "email": "alan@example.com"}}]},
        {"type": "physical", "rewards": [{**reward, "product_id": str(shop.hamper_usd.id), "amount": "50",
         "delivery_method": "shipment", "recipient": {"name": "Grace Hopper", "email": "grace@example.com"},
         "shipping_address": US_ADDRESS, "shipping_method_id": str(shop.ground_us.id)}]},
        {"type": "digital", "rewards": [{**reward, "currency": "GBP", "product_id": str(shop.books_gbp.id),
         "amount": "20", "delivery_method": "email", "country": "GB",
         "recipient": {"name": "Mary Somerville", "email": "mary@example.com"}}]},
    ]  # fmt: skip
    for body in bodies:
        response = api.post("/api/v1/orders", body)
        assert response.status_code == 201, response.json()
    return bodies


def _described(reward: Reward) -> dict:
    """What a recipient, the ledger and the timeline see of a reward (ids and timestamps aside)."""
    seen = {name: getattr(reward, name) for name in COMPARED}
    seen["hold"] = (reward.hold.amount, reward.hold.status, reward.hold.reference == f"reward:{reward.id}")
    seen["events"] = list(RewardEvent.objects.filter(reward=reward).values_list("from_status", "to_status", "note"))
    seen["claim_link"] = bool(reward.claim_token_hash) and reward.claim_expires_at is not None
    shipment = Shipment.objects.filter(reward=reward).first()
    if shipment is not None:
        seen["shipment"] = (shipment.status, shipment.carrier, shipment.method_name, shipment.address,
                            shipment.shipping_method_id)  # fmt: skip
    return seen


def test_batch_rewards_are_the_rewards_the_orders_api_creates(api_a, funded_a, shop):
    with tenant_context(funded_a):
        batch = batch_upload(file=io.BytesIO(csv_bytes(_rows(shop))), file_name="mixed.csv", dry_run=False)
        assert (batch.valid_rows, batch.status) == (5, "confirmed")
        Product.objects.filter(pk=shop.mug_eur.id).update(is_orderable=False)
        assert batch_process(batch_id=batch.id) == "done"
        Product.objects.filter(pk=shop.mug_eur.id).update(is_orderable=True)
        results = {line[3]: (line[6], line[8]) for line in batch_result_rows(batch=Batch.objects.get(pk=batch.id))}
        from_batch = {r.recipient_name: _described(r) for r in Reward.objects.select_related("hold")}
        batch_link = Reward.objects.get(delivery_method="link")
        batch_reward_ids = set(Reward.objects.values_list("id", flat=True))
    assert results["withdrawn"][0] == "failed" and "could no longer be ordered" in results["withdrawn"][1]
    assert {results[key][0] for key in ("digital", "link", "physical", "fx")} == {"scheduled"}
    assert len(from_batch) == 4

    _api_orders(api_a, shop)
    with tenant_context(funded_a):
        from_api = {
            r.recipient_name: _described(r)
            for r in Reward.objects.select_related("hold").exclude(id__in=batch_reward_ids)
        }
        # every charge is held once, per reward; the withdrawn row's charge went back to available
        charges = sum(r["charge_amount"] for r in [*from_batch.values(), *from_api.values()])
        balance = balance_get(currency="USD")
        assert (balance.held, balance.available) == (charges, Decimal("1000.00") - charges)
        assert ledger_invariant_violations() == []
    assert from_batch == from_api
    assert from_batch["Grace Hopper"]["shipment"][0] == "pending" and "shipment" not in from_batch["Ada Lovelace"]
    assert from_batch["Mary Somerville"]["charge_amount"] == Decimal("25.25")  # 20 GBP at 1.25 + 1 % fee

    token = crypto.decrypt(batch_link.claim_token_encrypted)  # the batch's claim link opens, in tenant A
    assert claim_token_hash(token) == batch_link.claim_token_hash
    assert claim_tenant_get(token=token) == funded_a


def test_chunks_of_one_batch_take_disjoint_rows_and_a_dead_chunks_rows_are_taken_again(committed_tenant, monkeypatch):
    """A chunk holding rows 2-11 (open transaction) does not stop a second one: it takes the next rows. The first
    one then dies (rolls back): its rows are pending again, and the batch ends with every row one reward."""
    import threading

    import batches.lifecycle

    # This test is the only one running chunks of this batch: the suite's Celery worker must not get the
    # confirm's tasks (it would take rows of its own between the two chunks here).
    monkeypatch.setattr(batches.lifecycle, "task_publish", lambda *args, **kwargs: True)

    from django.db import connections, transaction

    from batches.lifecycle import batch_confirm
    from batches.processing import _chunk_claim, batch_process_chunk
    from funds.services import funds_deposit
    from testsupport.batches import digital_rows
    from testsupport.catalog import make_shop

    shop = make_shop()  # committed, like the tenant: the other thread's connection sees them
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="1000")
        data = csv_bytes(digital_rows(shop.coffee_usd, 35, deliver_at=LATER))
        batch = batch_upload(file=io.BytesIO(data), file_name="side-by-side.csv", size=len(data))
        batch_confirm(batch_id=batch.id)
    holding, release, held_rows = threading.Event(), threading.Event(), []

    def dying_chunk() -> None:
        with tenant_context(committed_tenant):
            try:
                with transaction.atomic():
                    claimed = _chunk_claim(Batch.objects.get(pk=batch.id), 10)
                    held_rows.extend(BatchRow.objects.filter(id__in=[i for g in claimed for i in g.ids])
                                     .order_by("row_number").values_list("row_number", flat=True))  # fmt: skip
                    holding.set()
                    release.wait(timeout=30)
                    raise RuntimeError("killed")  # rolls back: as if the worker died mid-chunk
            except RuntimeError:
                pass
        connections.close_all()

    other = threading.Thread(target=dying_chunk)
    other.start()
    try:
        assert holding.wait(timeout=30)
        with tenant_context(committed_tenant):
            assert batch_process_chunk(batch_id=batch.id, chunk=10) == "more"
            taken = sorted(Reward.objects.values_list("batch_row__row_number", flat=True))
            assert held_rows == list(range(2, 12)) and taken == list(range(12, 22))  # the next rows, not the held
    finally:
        release.set()
        other.join()
    with tenant_context(committed_tenant):
        while batch_process_chunk(batch_id=batch.id, chunk=10) == "more":
            pass
        done = Batch.objects.get(pk=batch.id)
        assert (done.status, done.rows_done, done.rows_failed) == ("completed", 35, 0)
        rows = sorted(Reward.objects.values_list("batch_row__row_number", flat=True))
        assert rows == list(range(2, 37))  # every row once, the dead chunk's included
        assert balance_get(currency="USD").held == Decimal("350.00")
        assert ledger_invariant_violations() == []


def test_a_digital_chunk_written_in_sql_keeps_every_rows_columns_and_runs_once(funded_a, shop):
    """Digital rows are written by SQL from the staged rows (orders.bulk.order_create_for_batch_select): each row's
    language (its own, its person's, else the program's), person, metadata and the program's message and sender
    for rows without theirs; positions in file order, a unique RW- reference that search finds, one pending hold
    and one `created` event per reward, the rows linked; a chunk run again writes nothing."""
    import re

    from audit.actors import Actor
    from batches.processing import batch_process_chunk
    from orders.search import reward_search
    from people.services import person_create
    from programs.services import program_create

    with tenant_context(funded_a):
        program_create(slug="thanks", name="Thanks", default_message="From all of us", sender_name="HR",
                       default_locale="ms")  # fmt: skip
        person = person_create(actor=Actor.cli(), fields={"external_id": "emp-7", "name": "Siti",
                                                          "email": "siti@example.com", "locale": "en"})  # fmt: skip
        rows = [
            {"recipient_name": "Ada", "recipient_email": "ada@example.com", "product_id": str(shop.coffee_usd.id),
             "amount": "25", "message": "Mine", "sender_name": "Team", "locale": "en", "deliver_at": LATER,
             "external_id": "own", "metadata.department": "Sales"},
            {"recipient_name": "Alan", "recipient_email": "alan@example.com", "product_id": str(shop.coffee_usd.id),
             "amount": "10", "deliver_at": LATER, "external_id": "defaults"},
            {"person_external_id": "emp-7", "product_id": str(shop.coffee_usd.id), "amount": "10",
             "deliver_at": LATER, "external_id": "person"},
        ]  # fmt: skip
        columns = [*ALL_COLUMNS, "metadata.department"]
        batch = batch_upload(file=io.BytesIO(csv_bytes(rows, columns=columns)), file_name="sql.csv", dry_run=False,
                             program_slug="thanks")  # fmt: skip
        assert batch_process(batch_id=batch.id) == "done"
        assert batch_process_chunk(batch_id=batch.id) == "idle"  # finished: nothing is written twice
        rewards = {r.external_id: r for r in Reward.objects.select_related("hold", "order__program")}
        linked = {r.external_id: list(r.batch_row.values_list("reward_id", flat=True)) for r in rewards.values()}
        found = set(reward_search(Reward.objects.all(), "alan@example.com").values_list("external_id", flat=True))
        by_reference = set(reward_search(Reward.objects.all(), rewards["own"].reference).values_list("id", flat=True))
        events = list(RewardEvent.objects.values_list("reward__external_id", "from_status", "to_status", "note"))
        assert ledger_invariant_violations() == []
        held = balance_get(currency="USD").held
    own, defaults, named = rewards["own"], rewards["defaults"], rewards["person"]
    assert len(rewards) == 3 and len({r.order_id for r in rewards.values()}) == 1
    assert [r.position for r in (own, defaults, named)] == [0, 1, 2]
    assert (own.locale, defaults.locale, named.locale) == ("en", "ms", "en")
    assert (own.message, own.sender_name) == ("Mine", "Team")
    assert (defaults.message, defaults.sender_name) == ("From all of us", "HR")
    assert (named.person_id, named.recipient_name, named.recipient_email) == (person.id, "Siti", "siti@example.com")
    assert own.metadata == {"department": "Sales"} and defaults.metadata == {}
    assert own.order.program.slug == "thanks" and own.order.total_amount == Decimal("45.00")
    assert all(re.fullmatch(r"RW-[0-9A-Z]{4}-[0-9A-Z]{2}", r.reference) for r in rewards.values())
    assert len({r.reference for r in rewards.values()}) == 3
    assert found == {"defaults"} and by_reference == {own.id}
    assert all(r.hold.status == "pending" and r.hold.amount == r.charge_amount for r in rewards.values())
    assert all(r.hold.reference == f"reward:{r.id}" and linked[key] == [r.id] for key, r in rewards.items())
    assert all(r.status == "scheduled" and not r.claim_token_hash for r in rewards.values())
    assert sorted(events) == sorted((key, "", "scheduled", "created") for key in rewards)
    assert held == Decimal("45.00")


def test_marking_a_chunks_rows_done_keeps_each_row_on_its_page(funded_a, shop):
    """Batch rows leave half of each page free (batches 0010): a chunk marking its rows done writes each row's new
    version beside the old one (a HOT update), so it adds no entry to the rows' indexes."""
    from django.db import connection

    rows = [
        {"recipient_name": f"Row {n}", "recipient_email": f"row{n}@example.com", "product_id": str(shop.coffee_usd.id),
         "amount": "10", "deliver_at": LATER, "external_id": f"row-{n}", "message": "Thank you for a great year!"}
        for n in range(60)
    ]  # fmt: skip

    def updates() -> tuple[int, int]:  # in the transaction so far (earlier tests' savepoints included)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                "WHERE schemaname = current_schema() AND relname = %s",
                [BatchRow._meta.db_table],
            )
            return cursor.fetchone() or (0, 0)

    with tenant_context(funded_a):
        batch = batch_upload(file=io.BytesIO(csv_bytes(rows)), file_name="hot.csv", dry_run=False)
        updated, hot = updates()
        assert batch_process(batch_id=batch.id) == "done"
        updated_after, hot_after = updates()
        assert BatchRow.objects.filter(batch=batch, status="created").count() == 60
    assert (updated_after - updated, hot_after - hot) == (60, 60)
