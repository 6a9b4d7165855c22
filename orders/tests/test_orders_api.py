"""The orders API as an integrator sees it: create, refuse, replay, cancel, look up, stay isolated."""

from decimal import Decimal

import pytest
from django_tenants.utils import tenant_context

from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Order, Reward
from testsupport.orders import US_ADDRESS, digital_order
from testsupport.problems import assert_problem


def usd(tenant):
    with tenant_context(tenant):
        return balance_get(currency="USD")


def test_digital_order_holds_funds(api_a, funded_a, shop):
    response = api_a.post(
        "/api/v1/orders",
        digital_order(shop.coffee_usd, "25.00", external_id="crm-1", po_number="PO-9"),
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert response.status_code == 201, response.content
    order = response.json()
    assert order["status"] == "pending" and order["external_id"] == "crm-1" and order["po_number"] == "PO-9"
    assert order["total"] == {"amount": "25.00", "currency": "USD", "fx_rate": "1", "fees": "0.00", "shipping": "0.00"}
    [reward] = order["rewards"]
    assert reward["status"] == "pending" and reward["amount"] == "25.00" and reward["code"] is None
    assert reward["product"]["brand"] == "Lumen Coffee"
    balance = usd(funded_a)
    assert (balance.posted, balance.held, balance.available) == (Decimal("1000"), Decimal("25"), Decimal("975"))
    fetched = api_a.get(f"/api/v1/orders/{order['id']}").json()
    assert fetched == order
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == []


def test_quantity_and_several_rewards(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "10")
    body["rewards"][0]["quantity"] = 3
    body["rewards"].append({**body["rewards"][0], "quantity": 1, "amount": "50", "delivery_method": "api"})
    order = api_a.post("/api/v1/orders", body).json()
    assert [r["amount"] for r in order["rewards"]] == ["10.00", "10.00", "10.00", "50.00"]
    assert order["total"]["amount"] == "80.00"
    assert usd(funded_a).held == Decimal("80")


def test_replay_same_key_same_body(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd)
    first = api_a.post("/api/v1/orders", body, HTTP_IDEMPOTENCY_KEY="same")
    second = api_a.post("/api/v1/orders", body, HTTP_IDEMPOTENCY_KEY="same")
    assert second.status_code == 201 and second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert "Idempotent-Replayed" not in first
    with tenant_context(funded_a):
        assert Order.objects.count() == 1
    assert usd(funded_a).held == Decimal("25")


def test_same_key_different_body_is_422_and_changes_nothing(api_a, funded_a, shop):
    api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25"), HTTP_IDEMPOTENCY_KEY="k")
    response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "50"), HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(response, 422, "idempotency_key_reused")
    assert usd(funded_a).held == Decimal("25")


def test_idempotency_keys_are_per_tenant(api_a, api_b, funded_a, tenant_b, shop):
    with tenant_context(tenant_b):
        funds_deposit(currency="USD", amount="100")
    a = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY="shared")
    b = api_b.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY="shared")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"] and "Idempotent-Replayed" not in b


def test_duplicate_external_id_is_409(api_a, funded_a, shop):
    api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, external_id="crm-9"))
    body = assert_problem(api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, external_id="crm-9")), 409,
                          "duplicate_external_id")  # fmt: skip
    assert "external_id" in body["errors"]
    listed = api_a.get("/api/v1/orders", {"external_id": "crm-9"}).json()["results"]
    assert len(listed) == 1 and listed[0]["external_id"] == "crm-9"


@pytest.mark.parametrize(
    ("mutate", "status", "code", "field"),
    [
        (lambda b, s: b["rewards"][0].update(amount="30"), 422, "amount_not_allowed", "rewards[0].amount"),
        (lambda b, s: b["rewards"][0].update(product_id="00000000-0000-0000-0000-000000000000"), 422,
         "product_unavailable", None),
        (lambda b, s: b["rewards"][0]["recipient"].update(email="not-an-email"), 422, "validation_error",
         "rewards"),
        (lambda b, s: b["rewards"][0].update(delivery_method="sms", recipient={"name": "A", "phone": "0800"}), 422,
         "validation_error", "rewards[0].recipient.phone"),
        (lambda b, s: b["rewards"][0].update(deliver_at="2020-01-01T00:00:00Z"), 422, "validation_error",
         "rewards[0].deliver_at"),
        (lambda b, s: b["rewards"][0].update(currency="EUR"), 422, "validation_error", "rewards[0].currency"),
        (lambda b, s: b["rewards"][0].update(delivery_method="shipment"), 422, "validation_error",
         "rewards[0].delivery_method"),
        (lambda b, s: b.update(rewards=[]), 422, "validation_error", "rewards"),
        (lambda b, s: b.update(type="crypto"), 422, "validation_error", "type"),
        (lambda b, s: b["rewards"][0].update(amount="25.001"), 422, "amount_not_allowed", "rewards[0].amount"),
        (lambda b, s: b.update(program="no-such-program"), 422, "validation_error", "program"),
        (lambda b, s: b["rewards"][0].update(product_id=str(s.hamper_usd.id)), 422, "product_unavailable", None),
    ],
)  # fmt: skip
def test_refusals_are_problems_and_change_nothing(api_a, funded_a, shop, mutate, status, code, field):
    body = digital_order(shop.coffee_usd)
    mutate(body, shop)
    response = api_a.post("/api/v1/orders", body, HTTP_IDEMPOTENCY_KEY="refused")
    problem = assert_problem(response, status, code)
    if field:
        assert field in problem.get("errors", {}), problem
    balance = usd(funded_a)
    assert (balance.held, balance.available) == (Decimal("0"), Decimal("1000"))
    with tenant_context(funded_a):
        assert not Order.objects.exists() and not Reward.objects.exists()
        assert ledger_invariant_violations() == []
    # the refused key was not burned: a corrected request goes through
    assert (
        api_a.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY="refused").status_code == 201
    )


def test_each_request_is_validated_on_its_own(api_a, funded_a, shop):
    """The input serializer is reused per thread (orders.apis.order_create_input): nothing of one request's
    validation (its data, errors or result) reaches the next."""
    wrong_type = digital_order(shop.coffee_usd, type="crypto")
    wrong_email = digital_order(shop.coffee_usd)
    wrong_email["rewards"][0]["recipient"]["email"] = "not-an-email"
    first = assert_problem(api_a.post("/api/v1/orders", wrong_type), 422, "validation_error")
    second = assert_problem(api_a.post("/api/v1/orders", wrong_email), 422, "validation_error")
    assert "type" in first["errors"] and "rewards" not in first["errors"]
    assert "rewards" in second["errors"] and "type" not in second["errors"]
    placed = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25", external_id="mine"))
    assert placed.status_code == 201 and placed.json()["external_id"] == "mine"
    again = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "50"))
    assert again.status_code == 201 and again.json()["external_id"] is None
    assert again.json()["total"]["amount"] == "50.00"
    third = assert_problem(api_a.post("/api/v1/orders", wrong_type), 422, "validation_error")
    assert third["errors"] == first["errors"]


def test_insufficient_funds_is_402_and_changes_nothing(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "50")
    body["rewards"][0]["quantity"] = 21  # 1050 > 1000
    problem = assert_problem(api_a.post("/api/v1/orders", body), 402, "insufficient_funds")
    assert problem["retryable"] is False
    assert usd(funded_a).available == Decimal("1000")
    with tenant_context(funded_a):
        assert not Order.objects.exists()
        assert ledger_invariant_violations() == []


def test_no_funds_in_any_currency_is_402(api_a, tenant_a, shop):
    assert_problem(api_a.post("/api/v1/orders", digital_order(shop.coffee_usd)), 402, "insufficient_funds")


def test_cross_currency_order_records_rate_and_fee(api_a, funded_a, shop):
    body = digital_order(shop.books_gbp, "40.00", funding_currency="USD")
    body["rewards"][0]["country"] = "GB"
    order = api_a.post("/api/v1/orders", body).json()
    # 40 GBP x 1.25 = 50.00 USD, plus the 1 % FX fee 0.50
    assert order["total"] == {"amount": "50.50", "currency": "USD", "fx_rate": "1.25", "fees": "0.50",
                              "shipping": "0.00"}  # fmt: skip
    assert order["rewards"][0]["amount"] == "40.00" and order["rewards"][0]["currency"] == "GBP"
    assert order["rewards"][0]["charge"] == {"amount": "50.50", "currency": "USD"}
    assert usd(funded_a).held == Decimal("50.50")


def test_product_not_redeemable_in_country(api_a, funded_a, shop):
    body = digital_order(shop.books_gbp, "40.00", funding_currency="USD")
    body["rewards"][0]["country"] = "US"
    assert_problem(api_a.post("/api/v1/orders", body), 422, "product_unavailable")


def test_physical_flow_from_the_vendor_guide(api_a, funded_a, shop):
    products = api_a.get("/api/v1/products", {"type": "physical", "country": "US"}).json()["results"]
    assert str(shop.hamper_usd.id) in {p["id"] for p in products}
    methods = api_a.get("/api/v1/shipping-methods", {"country": "US"}).json()["results"]
    method = next(m for m in methods if m["id"] == str(shop.ground_us.id))
    body = {
        "type": "physical",
        "external_id": "hris-1",
        "rewards": [
            {
                "product_id": str(shop.hamper_usd.id),
                "amount": "50.00",
                "recipient": {"name": "Grace Hopper", "email": "grace@example.com"},
                "shipping_address": US_ADDRESS,
                "shipping_method_id": method["id"],
            }
        ],
    }
    created = api_a.post("/api/v1/orders", body)
    assert created.status_code == 201, created.content
    order = api_a.get(f"/api/v1/orders/{created.json()['id']}").json()
    assert order["total"]["amount"] == "58.00" and order["total"]["shipping"] == "8.00"
    reward = order["rewards"][0]
    assert reward["delivery_method"] == "shipment" and reward["shipment_id"]
    shipment = api_a.get(f"/api/v1/shipments/{reward['shipment_id']}").json()
    assert shipment["status"] == "pending" and shipment["carrier"] == "Parcelway"
    assert shipment["address"]["postal_code"] == "22202"
    assert usd(funded_a).held == Decimal("58")


@pytest.mark.parametrize(
    ("address", "field"),
    [
        ({**US_ADDRESS, "postal_code": "ABCDE"}, "rewards[0].shipping_address.postal_code"),
        ({**US_ADDRESS, "state": ""}, "rewards[0].shipping_address.state"),
        ({**US_ADDRESS, "line1": ""}, "rewards[0].shipping_address.line1"),
    ],
)
def test_physical_address_is_validated_per_country(api_a, funded_a, shop, address, field):
    body = {
        "type": "physical",
        "rewards": [
            {
                "product_id": str(shop.hamper_usd.id),
                "amount": "50.00",
                "recipient": {"name": "Grace"},
                "shipping_address": address,
                "shipping_method_id": str(shop.ground_us.id),
            }
        ],
    }
    problem = assert_problem(api_a.post("/api/v1/orders", body), 422, "validation_error")
    assert field in problem["errors"]


def test_shipping_method_must_serve_the_country(api_a, funded_a, shop):
    body = {
        "type": "physical",
        "rewards": [
            {
                "product_id": str(shop.hamper_usd.id),
                "amount": "50.00",
                "recipient": {"name": "Grace"},
                "shipping_address": US_ADDRESS,
                "shipping_method_id": str(shop.ground_eu.id),
            }
        ],
    }
    problem = assert_problem(api_a.post("/api/v1/orders", body), 422, "validation_error")
    assert "shipping_method_id" in problem["errors"]


def test_scheduled_reward_and_cancel_releases_funds(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "50")
    body["rewards"][0]["deliver_at"] = "2099-01-01T09:00:00Z"
    order = api_a.post("/api/v1/orders", body).json()
    assert order["rewards"][0]["status"] == "scheduled"
    assert usd(funded_a).held == Decimal("50")
    canceled = api_a.post(f"/api/v1/orders/{order['id']}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled" and canceled.json()["rewards"][0]["status"] == "canceled"
    balance = usd(funded_a)
    assert (balance.held, balance.available) == (Decimal("0"), Decimal("1000"))
    assert_problem(api_a.post(f"/api/v1/orders/{order['id']}/cancel"), 409, "not_cancelable")
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == []


def test_cancel_one_reward(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "10")
    body["rewards"][0]["quantity"] = 2
    order = api_a.post("/api/v1/orders", body).json()
    first, second = order["rewards"]
    response = api_a.post(f"/api/v1/rewards/{first['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert api_a.get(f"/api/v1/rewards/{second['id']}").json()["status"] == "pending"
    assert usd(funded_a).held == Decimal("10")
    assert api_a.get(f"/api/v1/orders/{order['id']}").json()["status"] == "pending"


def test_state_machine_guards(funded_a, api_a, shop):
    from core.errors import ApplicationError
    from orders.lifecycle import reward_transition

    order = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd)).json()
    with tenant_context(funded_a):
        reward = Reward.objects.get(pk=order["rewards"][0]["id"])
        assert reward_transition(reward=reward, to="pending") is reward  # unchanged: no-op
        with pytest.raises(ApplicationError) as excinfo:
            reward_transition(reward=reward, to="redeemed")
        assert excinfo.value.code == "invalid_state_transition"
        assert reward.events.count() == 1


def test_other_tenant_orders_are_404_and_unlisted(api_a, api_b, funded_a, shop):
    order = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd)).json()
    reward_id = order["rewards"][0]["id"]
    for path in (f"/api/v1/orders/{order['id']}", f"/api/v1/rewards/{reward_id}"):
        assert_problem(api_b.get(path), 404, "not_found")
    assert_problem(api_b.post(f"/api/v1/orders/{order['id']}/cancel"), 404, "not_found")
    assert_problem(api_b.post(f"/api/v1/rewards/{reward_id}/cancel"), 404, "not_found")
    assert api_b.get("/api/v1/orders").json()["results"] == []
    assert api_b.get("/api/v1/rewards").json()["results"] == []
    assert usd(funded_a).held == Decimal("25")  # B's cancel attempt changed nothing


def test_sandbox_orders_use_sandbox_funds(make_api_client, tenant_a, funded_a, shop):
    sandbox = make_api_client(tenant_a.sandbox)
    assert_problem(sandbox.post("/api/v1/orders", digital_order(shop.coffee_usd)), 402, "insufficient_funds")
    with tenant_context(tenant_a.sandbox):
        funds_deposit(currency="USD", amount="100")
    order = sandbox.post("/api/v1/orders", digital_order(shop.coffee_usd)).json()
    live = make_api_client(tenant_a)
    assert live.get(f"/api/v1/orders/{order['id']}").status_code == 404
    assert usd(funded_a).held == 0


def test_list_filters_and_query_budget(api_a, funded_a, shop, django_assert_max_num_queries):
    for index in range(6):
        body = digital_order(shop.coffee_usd, "10", external_id=f"ext-{index}")
        body["rewards"][0]["quantity"] = 2
        api_a.post("/api/v1/orders", body)
    first = api_a.get("/api/v1/orders", {"limit": 4}).json()
    assert len(first["results"]) == 4 and first["next"]
    second = api_a._client.get(first["next"]).json()
    assert len(second["results"]) == 2
    ids = [o["id"] for o in first["results"] + second["results"]]
    assert len(set(ids)) == 6
    assert api_a.get("/api/v1/orders", {"status": "pending"}).json()["results"]
    assert api_a.get("/api/v1/orders", {"status": "canceled"}).json()["results"] == []
    assert_problem(api_a.get("/api/v1/orders", {"status": "nope"}), 422, "validation_error")
    assert_problem(api_a.get("/api/v1/orders", {"created_after": "yesterday"}), 422, "validation_error")
    with django_assert_max_num_queries(12):
        api_a.get("/api/v1/orders")
    with django_assert_max_num_queries(10):
        api_a.get("/api/v1/rewards")


def test_one_order_is_a_fixed_number_of_statements(api_a, funded_a, shop):
    """The hot path's statement budget (bench/PROFILE-orders.md): the order with its rewards is one statement,
    the order.created event with its endpoints' read, the reward events, the idempotency record and the request's
    audit row another, the hold with its ledger transaction a third, the posting two UPDATEs (the last one writes
    the entries; inside this test's transaction the posting is not left to COMMIT); the API key comes from the
    process's cache."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from funds.models import LedgerEntry
    from webhooks.endpoints import webhook_endpoint_create
    from webhooks.models import WebhookDelivery

    for warm_up in ("warm-up", "key-cached"):  # the first writes last_used_at, the second caches the key
        api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10"), HTTP_IDEMPOTENCY_KEY=warm_up)
    with CaptureQueriesContext(connection) as without_endpoints:
        response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10"), HTTP_IDEMPOTENCY_KEY="one")
    assert response.status_code == 201, response.content
    captured = without_endpoints.captured_queries
    statements = [q["sql"] for q in captured if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]  # the test's
    # 20 before the write set shared statements, 14 before keys were cached per process (tenants.key_cache), 12
    # before the audit row went with the event, 11 before the session kept its search_path (tenants.session_backend)
    assert len(statements) <= 10, "\n".join(statements)
    assert not [sql for sql in statements if sql.startswith("SET search_path")]
    with tenant_context(funded_a):
        webhook_endpoint_create(url="http://127.0.0.1:9/hook", events=["order.created"])  # never sent here
    with CaptureQueriesContext(connection) as with_endpoint:
        response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10"), HTTP_IDEMPOTENCY_KEY="two")
    assert response.status_code == 201, response.content
    assert len(with_endpoint.captured_queries) == len(without_endpoints.captured_queries) + 1  # the delivery
    with tenant_context(funded_a):
        [delivery] = WebhookDelivery.objects.select_related("event")
        assert delivery.event.type == "order.created" and delivery.event.data == response.json()
        reference = f"reward:{response.json()['rewards'][0]['id']}"
        entries = LedgerEntry.objects.filter(transaction__reference=reference).select_related("account").order_by("id")
        assert [(e.account.kind, e.amount) for e in entries] == [("cash", Decimal("-10")), ("holds", Decimal("10"))]
        assert ledger_invariant_violations() == []
    replay = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10"), HTTP_IDEMPOTENCY_KEY="two")
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == response.json()


def test_an_order_parses_no_statement_afresh(api_a, funded_a, shop, monkeypatch):
    """Every statement of a repeated order is one psycopg has parsed before (core.precompiled
    .psycopg_statement_cache_widen): the order with its rewards has more parameters than psycopg caches by default,
    and parsing it again cost ~0.2 ms of CPU per order. Fails if a psycopg upgrade drops the knob."""
    from psycopg import _queries

    for warm_up in ("warm-up", "key-cached"):
        api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10"), HTTP_IDEMPOTENCY_KEY=warm_up)
    parsed_afresh: list[bytes] = []
    for name in ("_query2pg_nocache", "_query2pg_client_nocache"):  # server- and client-side binding
        original = getattr(_queries, name)
        monkeypatch.setattr(
            _queries, name, lambda query, *args, f=original: parsed_afresh.append(query) or f(query, *args)
        )
    response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10"), HTTP_IDEMPOTENCY_KEY="one")
    assert response.status_code == 201, response.content
    assert parsed_afresh == []


def test_read_key_cannot_order(make_api_client, funded_a, shop):
    reader = make_api_client(funded_a, scopes=["read"])
    assert_problem(reader.post("/api/v1/orders", digital_order(shop.coffee_usd)), 403, "forbidden")
