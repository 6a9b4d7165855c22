"""Orders under concurrency and crashes, over real HTTP against real PostgreSQL; the ledger must balance."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from unittest import mock

from django.db import connection
from django.db.models import Sum
from django_tenants.utils import tenant_context

from funds.models import Hold
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Order, Reward
from tenants.services import api_key_create
from testsupport.api import http_json
from testsupport.catalog import make_shop
from testsupport.orders import digital_order

CLIENTS = 24  # concurrent client threads (each request also gets its own server thread)


def _setup(tenant, funds: str):
    connection.set_schema_to_public()
    _, key = api_key_create(tenant=tenant)
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount=funds)
    return key, shop


def _state(tenant):
    """(available, committed to rewards (held or already captured by a worker), orders, rewards, violations)."""
    with tenant_context(tenant):
        committed = Hold.objects.exclude(status="released").aggregate(total=Sum("amount"))["total"] or Decimal(0)
        return (
            balance_get(currency="USD").available,
            committed,
            Order.objects.count(),
            Reward.objects.count(),
            ledger_invariant_violations(),
        )


def test_200_concurrent_orders_against_funds_for_100(committed_tenant, live_http):
    key, shop = _setup(committed_tenant, "1000.00")  # 100 x 10.00
    body = digital_order(shop.coffee_usd, "10.00")

    def place(index):
        return http_json("POST", f"{live_http}/api/v1/orders", key=key, body=body,
                         headers={"Idempotency-Key": f"order-{index}"})  # fmt: skip

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(place, range(200)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(201) == 100, sorted(set(statuses))
    assert statuses.count(402) == 100
    assert all(body["code"] == "insufficient_funds" for status, body, _ in results if status == 402)
    available, committed, orders, rewards, violations = _state(committed_tenant)
    assert (available, committed, orders, rewards) == (Decimal("0"), Decimal("1000"), 100, 100)
    assert violations == []


def test_50_concurrent_requests_with_one_idempotency_key_create_one_order(committed_tenant, live_http):
    key, shop = _setup(committed_tenant, "500.00")
    body = digital_order(shop.coffee_usd, "25.00")

    def place(_):
        return http_json("POST", f"{live_http}/api/v1/orders", key=key, body=body, headers={"Idempotency-Key": "once"})

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(place, range(50)))
    created = [b for s, b, h in results if s == 201]
    assert {s for s, _, _ in results} <= {201, 409}
    assert all(b["code"] == "idempotency_key_in_flight" and b["retryable"] for s, b, _ in results if s == 409)
    assert len({b["id"] for b in created}) == 1  # every 201 is the same order (one original, the rest replays)
    available, committed, orders, rewards, violations = _state(committed_tenant)
    assert (orders, rewards, committed, available) == (1, 1, Decimal("25"), Decimal("475"))
    assert violations == []


def test_crash_between_hold_and_response_then_retry(committed_tenant, live_http):
    """The process dies after the funds are held but before the outcome is stored: nothing survives,
    and the client's retry with the same key creates exactly one order."""
    key, shop = _setup(committed_tenant, "100.00")
    body = digital_order(shop.coffee_usd, "25.00")
    url = f"{live_http}/api/v1/orders"
    # The last step of the transaction: right after the holds are written, before commit.
    from orders import create

    hold_funds = create._hold_funds

    def hold_then_die(**kwargs):
        hold_funds(**kwargs)
        raise RuntimeError("power cut")

    with mock.patch("orders.create._hold_funds", side_effect=hold_then_die):
        status, problem, _ = http_json("POST", url, key=key, body=body, headers={"Idempotency-Key": "retry-me"})
    assert status == 500 and problem["code"] == "internal_error" and problem["retryable"] is True
    available, committed, orders, _, violations = _state(committed_tenant)
    assert (orders, committed, available) == (0, Decimal("0"), Decimal("100"))
    assert violations == []

    status, first, _ = http_json("POST", url, key=key, body=body, headers={"Idempotency-Key": "retry-me"})
    assert status == 201
    # the response is lost in transit after commit; the client retries again and gets the same order
    status, again, headers = http_json("POST", url, key=key, body=body, headers={"Idempotency-Key": "retry-me"})
    assert status == 201 and again["id"] == first["id"] and headers.get("Idempotent-Replayed") == "true"
    available, committed, orders, rewards, violations = _state(committed_tenant)
    assert (orders, rewards, committed, available) == (1, 1, Decimal("25"), Decimal("75"))
    assert violations == []


def test_concurrent_orders_with_one_external_id_create_one_order(committed_tenant, live_http):
    """Those that pass the look-up before the first commits meet the unique index: 409 as well, never a 500."""
    key, shop = _setup(committed_tenant, "500.00")
    body = digital_order(shop.coffee_usd, "10.00", external_id="crm-race")

    def place(index):
        return http_json("POST", f"{live_http}/api/v1/orders", key=key, body=body,
                         headers={"Idempotency-Key": f"race-{index}"})  # fmt: skip

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(place, range(CLIENTS)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(201) == 1, sorted(set(statuses))
    assert all(b["code"] == "duplicate_external_id" for s, b, _ in results if s != 201), results
    available, committed, orders, rewards, violations = _state(committed_tenant)
    assert (orders, rewards, committed, available) == (1, 1, Decimal("10"), Decimal("490"))
    assert violations == []


def test_two_rewards_of_one_order_finishing_at_once_complete_the_order(committed_tenant):
    """The second refresh waits for the first one's order lock; once it has it, it must see the first one's
    committed reward (a statement that waited answers from its old snapshot: the order stayed `processing`)."""
    import threading

    from django.db import connections, transaction

    from orders.create import order_create
    from orders.idempotency import request_hash
    from orders.lifecycle import order_refresh_status
    from orders.planning import RewardInput
    from testsupport.waiting import wait_until

    _, shop = _setup(committed_tenant, "100.00")
    with tenant_context(committed_tenant):
        _, created, _ = order_create(
            order_type="digital",
            rewards=[RewardInput(product_id=str(shop.coffee_usd.id), amount=Decimal("10.00"), currency="USD",
                                 delivery_method="email", recipient={"name": name, "email": f"{name}@example.com"})
                     for name in ("ada", "bo")],
            idempotency_key=None,
            body_hash=request_hash({"race": True}),
            render=lambda order: {"id": str(order.id)},
        )  # fmt: skip
        order = Order.objects.get(pk=created["id"])
        first, second = order.rewards.order_by("position")
        Reward.objects.filter(order=order).update(status="processing")
    pids: list[int] = []

    def finish_second() -> None:
        with tenant_context(committed_tenant):
            connection.ensure_connection()
            pids.append(connection.connection.info.backend_pid)
            with transaction.atomic():
                Reward.objects.filter(pk=second.pk).update(status="delivered")
                order_refresh_status(order=Order.objects.get(pk=order.pk))
        connections.close_all()

    def second_waits_for_the_lock() -> bool:
        with connection.cursor() as cursor:  # pg_locks is read live, even inside a transaction
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", [pids[0]])
            return bool(cursor.fetchone()[0])

    with tenant_context(committed_tenant):
        with transaction.atomic():  # the first finisher: holds the order lock until it commits
            Reward.objects.filter(pk=first.pk).update(status="delivered")
            order_refresh_status(order=order)
            other = threading.Thread(target=finish_second)
            other.start()
            assert wait_until(lambda: bool(pids), timeout=10)
            assert wait_until(second_waits_for_the_lock, timeout=10)
        other.join()
        assert Order.objects.get(pk=order.pk).status == "completed"


def test_orders_that_cross_the_low_balance_threshold_at_once_alert_once(committed_tenant, live_http):
    """Holds are posted as the order commits; one that would cross the threshold there is posted in its
    transaction instead (which records balance.low): among concurrent orders exactly one crosses it."""
    from funds.services import funds_set_low_balance_threshold
    from webhooks.models import Event

    key, shop = _setup(committed_tenant, "1000.00")
    with tenant_context(committed_tenant):
        funds_set_low_balance_threshold(currency="USD", threshold="500.00")
    body = digital_order(shop.coffee_usd, "10.00")

    def place(index):
        return http_json("POST", f"{live_http}/api/v1/orders", key=key, body=body,
                         headers={"Idempotency-Key": f"low-{index}"})  # fmt: skip

    with ThreadPoolExecutor(8) as pool:  # concurrent enough to race on the crossing; the test server's backlog is 10
        statuses = [status for status, _, _ in pool.map(place, range(80))]
    assert statuses == [201] * 80
    available, committed, orders, rewards, violations = _state(committed_tenant)
    assert (available, committed, orders, rewards) == (Decimal("200"), Decimal("800"), 80, 80)
    assert violations == []
    with tenant_context(committed_tenant):
        low = [event.data for event in Event.objects.filter(type="balance.low")]
    assert len(low) == 1 and Decimal(low[0]["available"]) < 500 <= Decimal(low[0]["available"]) + 10


def test_an_order_on_its_own_is_one_transaction_of_few_statements(committed_tenant):
    """Outside any test transaction, as in production: one transaction whose holds are posted by its COMMIT, and
    nothing written after it (the audit row went in with the order)."""
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from audit.models import AuditEvent

    key, shop = _setup(committed_tenant, "100.00")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for warm_up in ("warm-up", "key-cached"):  # the first writes last_used_at, the second caches the key
        client.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00"), content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY=warm_up)  # fmt: skip
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00"),
                               content_type="application/json", HTTP_IDEMPOTENCY_KEY="one")  # fmt: skip
    assert response.status_code == 201, response.content
    statements = [q["sql"] for q in captured.captured_queries]
    # SET search_path, the key's lock, the replay read, product, curation rules, balance, three writes
    assert statements[0] == "BEGIN" and statements[-1] == "COMMIT", statements
    assert len(statements) <= 11, "\n".join(statements)
    available, committed, orders, rewards, violations = _state(committed_tenant)
    assert (available, committed, orders, rewards) == (Decimal("70"), Decimal("30"), 3, 3)
    assert violations == []
    with tenant_context(committed_tenant):
        assert AuditEvent.objects.filter(action="POST /api/v1/orders").count() == 3
