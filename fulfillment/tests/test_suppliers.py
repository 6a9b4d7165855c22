"""Supplier adapters over real HTTP on 127.0.0.1: a fake vendor API and a fake Twilio-style SMS provider."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
import uuid
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from django.core import mail
from django_tenants.utils import tenant_context

from catalog.inventory import inventory_import_csv
from catalog.services import brand_upsert, product_create, supplier_upsert
from fulfillment.services import reward_fulfil
from fulfillment.suppliers import SupplierRejected, SupplierUnavailable, adapter_for
from funds.selectors import balance_get, ledger_invariant_violations
from orders.models import Reward
from testsupport.orders import digital_order
from testsupport.servers import LocalServer, Reply

VENDOR_KEY = "vk_live_" + "s3cr3t" * 4
KEY_ENV = "RP_TEST_VENDOR_KEY"


class FakeVendor:
    """Behaviour by SKU: OK, FLAKY (503 once per reference), BAD (400), SLOW, DRIBBLE, CONFLICT (409 on
    a repeated reference instead of a replay), THROTTLED (429). Orders are idempotent per Idempotency-Key."""

    def __init__(self) -> None:
        self.orders: dict[str, dict] = {}
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = LocalServer(self.route)
        self.url = self.server.url + "/v1"

    def route(self, method, path, headers, raw) -> Reply:
        if headers.get("Authorization") != f"Bearer {VENDOR_KEY}":
            return Reply(401, {"message": "bad credentials"})
        if method == "POST" and path == "/v1/orders":
            body = json.loads(raw)
            reference, sku = body["reference"], body["sku"]
            assert headers.get("Idempotency-Key") == reference
            with self.lock:
                self.attempts[reference] = self.attempts.get(reference, 0) + 1
                attempt = self.attempts[reference]
                existing = self.orders.get(reference)
            if sku == "BAD":
                return Reply(400, {"message": "SKU BAD is not sold to this account"})
            if sku == "THROTTLED":
                return Reply(429, {"message": "slow down"}, {"Retry-After": "7"})
            if sku == "FLAKY" and attempt == 1:
                return Reply(503, {"message": "maintenance"}, {"Retry-After": "1"})
            if sku == "SLOW":
                return Reply(201, self._create(reference, body), delay=3.0)
            if sku == "DRIBBLE":
                return Reply(201, self._create(reference, body), dribble=0.05)
            if existing is not None:
                if sku == "CONFLICT":
                    return Reply(409, {"message": "reference already used", "reference": reference})
                return Reply(200, existing)
            return Reply(201, self._create(reference, body))
        parts = path.split("/")  # /v1/orders/{reference}[/cancel]
        if len(parts) >= 4 and parts[2] == "orders":
            order = self.orders.get(parts[3])
            if order is None:
                return Reply(404, {"message": "no such order"})
            if method == "POST" and parts[-1] == "cancel":
                order["status"] = "canceled"
                return Reply(200, order)
            if method == "GET":
                return Reply(200, order)
        return Reply(404, {"message": "no route"})

    def _create(self, reference, body) -> dict:
        with self.lock:
            if reference not in self.orders:
                self.orders[reference] = {
                    "id": f"vo_{secrets.token_hex(4)}",
                    "code": f"VND-{secrets.token_hex(6).upper()}",
                    "pin": f"{secrets.randbelow(10**8):08d}",  # 8 digits: a 4-digit PIN turns up in UUIDs by chance
                    "expires_at": "2030-01-31T00:00:00Z",
                    "status": "issued",
                    "sku": body["sku"],
                    "amount": body["amount"],
                    "currency": body["currency"],
                }
            return self.orders[reference]

    def posts(self) -> list[dict]:
        return [r for r in self.server.requests if r["method"] == "POST" and r["path"] == "/v1/orders"]


@pytest.fixture
def vendor(monkeypatch):
    monkeypatch.setenv(KEY_ENV, VENDOR_KEY)
    fake = FakeVendor()
    yield fake
    fake.server.stop()


SKUS = ("OK", "FLAKY", "BAD", "SLOW", "DRIBBLE", "CONFLICT", "THROTTLED")


@pytest.fixture
def vendor_shop(db, vendor):
    """One HTTP supplier pointing at the fake vendor, one product per behaviour (by SKU)."""
    tag = uuid.uuid4().hex[:6]
    brand = brand_upsert(slug=f"orbit-{tag}", name="Orbit Outfitters")
    supplier = supplier_upsert(code=f"vendor-{tag}", name="Orbit API", kind="http", config={})
    products = {
        sku: product_create(brand=brand, name=f"Orbit {sku}", currency="USD", countries=["US"],
                            denomination_type="fixed", denomination_values=["25"], supplier=supplier)
        for sku in SKUS
    }  # fmt: skip
    supplier.config = {
        "base_url": vendor.url,
        "api_key_env": KEY_ENV,
        "timeout_seconds": 1,
        "sku_map": {str(product.pk): sku for sku, product in products.items()},
    }
    supplier.save(update_fields=["config"])
    return supplier, products


def _issue(supplier, product, reference="reward-1"):
    return adapter_for(supplier).issue(product=product, amount=Decimal("25.00"), currency="USD", reference=reference)


def test_issue_posts_the_order_with_idempotency_key_and_bearer_credential(vendor_shop, vendor):
    supplier, products = vendor_shop
    issued = _issue(supplier, products["OK"])
    order = vendor.orders["reward-1"]
    assert (issued.code, issued.pin, issued.reference) == (order["code"], order["pin"], order["id"])
    assert issued.expires_at.isoformat() == "2030-01-31T00:00:00+00:00"
    [request] = vendor.posts()
    assert request["headers"]["Idempotency-Key"] == "reward-1"
    assert request["headers"]["Authorization"] == f"Bearer {VENDOR_KEY}"
    assert json.loads(request["raw"]) == {"reference": "reward-1", "sku": "OK", "amount": "25.00", "currency": "USD"}
    assert VENDOR_KEY not in json.dumps(supplier.config)  # the database holds the variable's name only


def test_asking_twice_returns_the_same_code(vendor_shop, vendor):
    supplier, products = vendor_shop
    first, again = _issue(supplier, products["OK"]), _issue(supplier, products["OK"])
    assert first.code == again.code and len(vendor.orders) == 1 and len(vendor.posts()) == 2


def test_a_409_for_the_same_reference_fetches_the_existing_order(vendor_shop, vendor):
    supplier, products = vendor_shop
    first = _issue(supplier, products["CONFLICT"])
    again = _issue(supplier, products["CONFLICT"])
    assert again.code == first.code and again.reference == first.reference
    assert [r["method"] for r in vendor.server.requests] == ["POST", "POST", "GET"]
    assert vendor.server.requests[-1]["path"] == "/v1/orders/reward-1"


def test_503_is_retryable_with_retry_after_then_succeeds(vendor_shop, vendor):
    supplier, products = vendor_shop
    with pytest.raises(SupplierUnavailable) as caught:
        _issue(supplier, products["FLAKY"])
    assert caught.value.retry_after == 1.0 and "503" in str(caught.value)
    assert _issue(supplier, products["FLAKY"]).code == vendor.orders["reward-1"]["code"]


def test_429_is_retryable_and_keeps_retry_after(vendor_shop):
    supplier, products = vendor_shop
    with pytest.raises(SupplierUnavailable) as caught:
        _issue(supplier, products["THROTTLED"])
    assert caught.value.retry_after == 7.0


def test_400_is_rejected_with_the_vendors_message(vendor_shop):
    supplier, products = vendor_shop
    with pytest.raises(SupplierRejected, match="refused \\(400\\): SKU BAD is not sold to this account"):
        _issue(supplier, products["BAD"])


@pytest.mark.parametrize("sku", ["SLOW", "DRIBBLE"])
def test_a_slow_vendor_times_out_within_the_configured_bound(vendor_shop, sku):
    supplier, products = vendor_shop
    started = time.monotonic()
    with pytest.raises(SupplierUnavailable, match="timed out after 1 s"):
        _issue(supplier, products[sku])
    assert time.monotonic() - started < 2.5  # 1 s timeout; a dribbling body cannot stretch it


def test_connection_refused_and_missing_configuration(vendor_shop, vendor, monkeypatch):
    supplier, products = vendor_shop
    vendor.server.stop()
    with pytest.raises(SupplierUnavailable, match="connection failed"):
        _issue(supplier, products["OK"])
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(SupplierUnavailable, match="credential is missing"):
        _issue(supplier, products["OK"])
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    supplier.config["sku_map"] = {}
    with pytest.raises(SupplierRejected, match="no vendor SKU"):
        _issue(supplier, products["OK"])


def test_wrong_credential_is_rejected_without_echoing_it(vendor_shop, monkeypatch):
    supplier, products = vendor_shop
    monkeypatch.setenv(KEY_ENV, "wrong-key-123")
    with pytest.raises(SupplierRejected) as caught:
        _issue(supplier, products["OK"])
    assert "401" in str(caught.value) and "wrong-key-123" not in str(caught.value)


def test_status_and_void(vendor_shop, vendor):
    supplier, products = vendor_shop
    adapter = adapter_for(supplier)
    assert adapter.status(reference="reward-1") == "unknown"
    _issue(supplier, products["OK"])
    assert adapter.status(reference="reward-1") == "issued"
    # No void endpoint configured: a void is refused, and the vendor is not asked.
    asked = len(vendor.server.requests)
    with pytest.raises(SupplierRejected, match="no void endpoint"):
        adapter.void(reference="reward-1", disclosed=True)
    assert len(vendor.server.requests) == asked and adapter.status(reference="reward-1") == "issued"
    supplier.config = {**supplier.config, "void_path": "/orders/{reference}/cancel"}
    adapter = adapter_for(supplier)
    adapter.void(reference="reward-1", disclosed=True)
    assert adapter.status(reference="reward-1") == "canceled"
    void = vendor.server.requests[-2]
    assert (void["method"], void["path"]) == ("POST", "/v1/orders/reward-1/cancel")
    assert void["headers"]["Idempotency-Key"] == "reward-1:void"
    with pytest.raises(SupplierRejected, match="404"):
        adapter.void(reference="never-ordered", disclosed=False)


def _order(api, product, **reward_overrides):
    body = digital_order(product, "25.00")
    body["rewards"][0].update(reward_overrides)
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    return response.json()["rewards"][0]["id"]


def test_reward_through_the_http_supplier_retries_a_503_and_never_logs_the_code(
    api_a, funded_a, vendor_shop, vendor, caplog
):
    from fulfillment.tasks import reward_fulfil_task

    caplog.set_level(logging.DEBUG)
    _, products = vendor_shop
    reward_id = _order(api_a, products["FLAKY"])
    with tenant_context(funded_a):
        reward_fulfil_task.apply(args=[reward_id])  # eager: the 503 raises Retry, the retry succeeds
        reward = Reward.objects.get(pk=reward_id)
        assert reward.status == "delivered" and reward.attempts == 2 and reward.hold.status == "captured"
        assert reward.supplier_reference == vendor.orders[reward_id]["id"]
        assert balance_get(currency="USD").available == Decimal("975")
        assert ledger_invariant_violations() == []
    code = vendor.orders[reward_id]["code"]
    assert len(vendor.posts()) == 2 and {r["headers"]["Idempotency-Key"] for r in vendor.posts()} == {reward_id}
    [message] = mail.outbox
    assert code in message.body
    assert api_a.post(f"/api/v1/rewards/{reward_id}/reveal").json()["code"] == code
    # Every string a log record carries (message and extra fields). Numbers such as timestamps are left out:
    # an 8-digit PIN would otherwise match digits of a float by chance.
    logged = caplog.text + " ".join(
        str(value)
        for record in caplog.records
        for value in vars(record).values()
        if not isinstance(value, (int, float))
    )
    assert "supplier unavailable; retrying" in caplog.text
    assert code not in logged, "the gift card code reached a log record"
    assert vendor.orders[reward_id]["pin"] not in logged, "the PIN reached a log record"
    assert VENDOR_KEY not in logged, "the vendor API key reached a log record"


def test_rejected_by_the_vendor_fails_the_reward_and_releases_its_hold(api_a, funded_a, vendor_shop):
    _, products = vendor_shop
    reward_id = _order(api_a, products["BAD"])
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
        reward = Reward.objects.get(pk=reward_id)
        assert reward.status == "failed" and "not sold to this account" in reward.failure_reason
        assert reward.hold.status == "released" and balance_get(currency="USD").available == Decimal("1000")
        assert ledger_invariant_violations() == []


def test_reward_from_code_inventory_end_to_end(api_a, funded_a, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex[:6]
    supplier = supplier_upsert(code=f"inv-{tag}", name="Stock", kind="inventory")
    brand = brand_upsert(slug=f"kite-{tag}", name="Kite Books")
    product = product_create(brand=brand, name="Kite Books", currency="USD", countries=["US"],
                             denomination_type="fixed", denomination_values=["25"], supplier=supplier)  # fmt: skip
    (tmp_path / "codes.csv").write_text("code,pin,denomination\nKITE-7777-8888-9999,73914286,25\n")
    inventory_import_csv(supplier=supplier, product=product, path=tmp_path / "codes.csv")
    first = _order(api_a, product)
    second = _order(api_a, product)
    with tenant_context(funded_a):
        reward_fulfil(reward_id=first)
        reward_fulfil(reward_id=second)
        delivered, failed = Reward.objects.get(pk=first), Reward.objects.get(pk=second)
        assert delivered.status == "delivered" and delivered.code_last4 == "9999"
        assert failed.status == "failed" and failed.hold.status == "released"
        assert ledger_invariant_violations() == []
    assert "KITE-7777-8888-9999" in mail.outbox[0].body
    assert api_a.get(f"/api/v1/rewards/{first}").json()["code"].endswith("9999")
    assert "KITE-7777-8888-9999" not in caplog.text and "73914286" not in caplog.text


# --- HTTP SMS provider ----------------------------------------------------------------------------------


class FakeSmsProvider:
    """Twilio-style: POST /2010-04-01/Accounts/{sid}/Messages.json, form To/From/Body, basic auth."""

    ACCOUNT, TOKEN = "AC0123456789", "sms-token-" + "x" * 20

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.server = LocalServer(self.route)

    def route(self, method, path, headers, raw) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.ACCOUNT}:{self.TOKEN}".encode()).decode()
        if headers.get("Authorization") != expected:
            return Reply(401, {"code": 20003, "message": "Authenticate"})
        if path != f"/2010-04-01/Accounts/{self.ACCOUNT}/Messages.json" or method != "POST":
            return Reply(404, {"message": "no route"})
        assert headers.get("Content-Type") == "application/x-www-form-urlencoded"
        form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
        to = form["To"]
        if to == "+15550000400":
            return Reply(400, {"code": 21211, "message": "The 'To' number +15550000400 is not a valid phone number."})
        if to == "+15550000401":
            return Reply(400, {"code": 21610, "message": f"Refused: {form['Body']}"})
        if to == "+15550000503":
            return Reply(503, {"message": "busy"}, {"Retry-After": "5"})
        if to == "+15550000408":
            return Reply(201, {"sid": "SMslow"}, delay=2.0)
        self.messages.append(form)
        return Reply(201, {"sid": f"SM{secrets.token_hex(8)}", "status": "queued"})


@pytest.fixture
def sms_provider(settings):
    from fulfillment.sms import get_sms_backend

    provider = FakeSmsProvider()
    settings.SMS_BACKEND = "fulfillment.sms.HttpSmsBackend"
    settings.SMS_HTTP_URL = provider.server.url + "/2010-04-01/Accounts/{account}/Messages.json"
    settings.SMS_HTTP_ACCOUNT, settings.SMS_HTTP_TOKEN = provider.ACCOUNT, provider.TOKEN
    settings.SMS_HTTP_FROM = "+15005550006"
    settings.SMS_HTTP_TIMEOUT_SECONDS = 1.0
    get_sms_backend.cache_clear()
    yield provider
    get_sms_backend.cache_clear()
    provider.server.stop()


def test_http_sms_posts_a_form_with_basic_auth(sms_provider, caplog):
    from fulfillment.sms import HttpSmsBackend

    caplog.set_level(logging.DEBUG)
    HttpSmsBackend().send(to="+14155550123", body="Your code: ABCD-1234")
    [message] = sms_provider.messages
    assert message == {"To": "+14155550123", "From": "+15005550006", "Body": "Your code: ABCD-1234"}
    assert "ABCD-1234" not in caplog.text and sms_provider.TOKEN not in caplog.text


def test_http_sms_errors(sms_provider):
    from fulfillment.delivery import DeliveryFailed
    from fulfillment.sms import HttpSmsBackend, SmsUnavailable

    backend = HttpSmsBackend()
    with pytest.raises(SmsUnavailable) as caught:
        backend.send(to="+15550000503", body="hi")
    assert caught.value.retry_after == 5.0 and isinstance(caught.value, OSError)  # the delivery task retries OSError
    with pytest.raises(SmsUnavailable, match="timed out"):
        backend.send(to="+15550000408", body="hi")
    with pytest.raises(DeliveryFailed, match="not a valid phone number"):
        backend.send(to="+15550000400", body="hi")
    with pytest.raises(DeliveryFailed) as refused:
        backend.send(to="+15550000401", body="Your code SECRET-CODE-0001")
    assert "SECRET-CODE-0001" not in str(refused.value) and "withheld" in str(refused.value)
    sms_provider.server.stop()
    with pytest.raises(SmsUnavailable, match="connection failed"):
        backend.send(to="+14155550123", body="hi")


def test_http_sms_needs_its_settings(settings):
    from django.core.exceptions import ImproperlyConfigured

    from fulfillment.sms import HttpSmsBackend

    settings.SMS_HTTP_TOKEN = ""
    with pytest.raises(ImproperlyConfigured, match="SMS_HTTP_TOKEN"):
        HttpSmsBackend()


def test_sms_reward_is_delivered_through_the_http_provider(api_a, funded_a, shop, sms_provider):
    reward_id = _order(
        api_a, shop.coffee_usd, delivery_method="sms", recipient={"name": "Ada", "phone": "+14155550123"}
    )
    bad_id = _order(api_a, shop.coffee_usd, delivery_method="sms", recipient={"name": "Bob", "phone": "+15550000400"})
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
        reward_fulfil(reward_id=bad_id)
        assert Reward.objects.get(pk=reward_id).status == "delivered"
        assert Reward.objects.get(pk=bad_id).status == "delivery_failed"
        assert ledger_invariant_violations() == []
    code = api_a.post(f"/api/v1/rewards/{reward_id}/reveal").json()["code"]
    [message] = sms_provider.messages
    assert message["To"] == "+14155550123" and code in message["Body"]
