"""The recipient claim page /r/<token>: what a recipient sees, what it records, and what it never gives away."""

import logging
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context
from freezegun import freeze_time

from catalog.services import brand_upsert, product_create
from fulfillment.choice import reward_choose
from fulfillment.claim_links import CLAIM_FAILURE_LIMIT_PER_MINUTE, claim_link_issue
from fulfillment.models import CodeReveal, Shipment
from fulfillment.services import reward_fulfil
from funds.models import Hold
from funds.selectors import ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Reward, RewardEvent
from tenants.models import ClaimTokenIndex
from testsupport.orders import US_ADDRESS, physical_order


def _client() -> Client:
    return Client(HTTP_HOST="localhost")


def _link_order(api, product, amount="25.00", **reward_overrides) -> tuple[str, str]:
    reward = {
        "product_id": str(product.id),
        "amount": amount,
        "currency": product.currency,
        "delivery_method": "link",
        "recipient": {"name": "Ada Lovelace"},
        "message": "Thanks for shipping the release!",
        "sender_name": "Acme People Team",
    }
    reward.update(reward_overrides)
    response = api.post("/api/v1/orders", {"type": "link", "rewards": [reward]})
    assert response.status_code == 201, response.content
    [created] = response.json()["rewards"]
    token = created["claim_url"].rsplit("/r/", 1)[1]
    return created["id"], token


def _delivered_link(api, tenant, product, amount="25.00", **overrides) -> tuple[str, str]:
    reward_id, token = _link_order(api, product, amount, **overrides)
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward_id)
        assert Reward.objects.get(pk=reward_id).status == "delivered"
    return reward_id, token


def _reward(tenant, reward_id) -> Reward:
    with tenant_context(tenant):
        return Reward.objects.select_related("hold").get(pk=reward_id)


def _code(tenant, reward_id) -> str:
    from core import crypto

    return crypto.decrypt(_reward(tenant, reward_id).code_encrypted)


@pytest.fixture
def choice_shop(shop):
    """A choice product (USD, 5-100) offering coffee (10/25/50), a 5-200 range card, and a 100-only card."""
    brand = brand_upsert(slug=f"pick-{shop.coffee_usd.brand.slug}", name="Pick Anything")
    range_brand = brand_upsert(
        slug=f"trail-{shop.coffee_usd.brand.slug}",
        name="Trailhead Outfitters",
        description="Outdoor gear.",
        redemption_instructions="Enter the code at checkout.",
    )
    trail = product_create(
        brand=range_brand, name="Trailhead eGift", currency="USD", countries=["US"], denomination_type="range",
        denomination_min="5", denomination_max="200", barcode_format="qr",
    )  # fmt: skip
    big_only = product_create(
        brand=range_brand, name="Trailhead 100", currency="USD", countries=["US"], denomination_type="fixed",
        denomination_values=["100"],
    )  # fmt: skip
    choice = product_create(
        brand=brand, name="Pick Anything USD", type="choice", currency="USD", countries=["US"],
        denomination_type="range", denomination_min="5", denomination_max="100",
        choice_options=[shop.coffee_usd, trail, big_only],
    )  # fmt: skip
    shop.trail_usd, shop.trail_100, shop.choice_usd = trail, big_only, choice
    return shop


def test_page_shows_the_gift_without_the_code_and_marks_it_opened(api_a, funded_a, shop):
    reward_id, token = _delivered_link(api_a, funded_a, shop.coffee_usd)
    code = _code(funded_a, reward_id)

    response = _client().get(f"/r/{token}")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Lumen Coffee" in html and "25.00" in html and "USD" in html
    assert "Thanks for shipping the release!" in html and "Acme People Team" in html
    assert "Reveal code" in html and f'action="/r/{token}/reveal"' in html
    assert code not in html and code[-4:] not in html
    assert response["Cache-Control"].count("no-store") == 1
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward_id).status == "opened"
        assert CodeReveal.objects.filter(reward_id=reward_id).count() == 0
    _client().get(f"/r/{token}")  # opening again is not a second event
    with tenant_context(funded_a):
        assert RewardEvent.objects.filter(reward_id=reward_id, to_status="opened").count() == 1


def test_page_before_fulfilment_says_it_is_being_prepared(api_a, funded_a, shop):
    reward_id, token = _link_order(api_a, shop.coffee_usd)

    response = _client().get(f"/r/{token}")

    assert response.status_code == 200
    assert "being prepared" in response.content.decode() and "Reveal code" not in response.content.decode()
    reveal = _client().post(f"/r/{token}/reveal")
    assert reveal.status_code == 200 and "being prepared" in reveal.content.decode()
    assert _reward(funded_a, reward_id).status == "pending"


def test_reveal_shows_the_code_marks_redeemed_audits_and_reopens_on_any_device(api_a, funded_a, shop):
    reward_id, token = _delivered_link(api_a, funded_a, shop.coffee_usd)
    code = _code(funded_a, reward_id)
    phone = _client()
    phone.get(f"/r/{token}")

    revealed = phone.post(f"/r/{token}/reveal")

    assert revealed.status_code == 200
    html = revealed.content.decode()
    assert code in html and 'data-copy="claim-code"' in html and "PIN" in html
    cookie = revealed.cookies["rp_claim"]
    assert cookie["path"] == f"/r/{token}" and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert code not in cookie.value
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward_id).status == "redeemed"
        assert list(CodeReveal.objects.filter(reward_id=reward_id).values_list("actor", flat=True)) == ["recipient"]
        assert RewardEvent.objects.filter(reward_id=reward_id, to_status="redeemed").count() == 1

    # the same browser sees the code again on the same link; each showing is audited, redeemed stays once
    again = phone.get(f"/r/{token}")
    assert again.status_code == 200 and code in again.content.decode()

    # the laptop: the link is the credential until it expires. Opening shows the gift (a GET never shows a
    # code: mail scanners), revealing shows the same code.
    laptop = _client()
    opened = laptop.get(f"/r/{token}")
    assert opened.status_code == 200 and "Reveal code" in opened.content.decode()
    assert code not in opened.content.decode()
    shown = laptop.post(f"/r/{token}/reveal")
    assert shown.status_code == 200 and code in shown.content.decode()
    with tenant_context(funded_a):
        assert CodeReveal.objects.filter(reward_id=reward_id, actor="recipient").count() == 3
        assert RewardEvent.objects.filter(reward_id=reward_id, to_status="redeemed").count() == 1


def test_reveal_needs_the_csrf_token_of_the_page(api_a, funded_a, shop):
    reward_id, token = _delivered_link(api_a, funded_a, shop.coffee_usd)
    browser = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)

    assert browser.post(f"/r/{token}/reveal").status_code == 403
    page = browser.get(f"/r/{token}").content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert browser.post(f"/r/{token}/reveal", {"csrfmiddlewaretoken": csrf}).status_code == 200
    assert _reward(funded_a, reward_id).status == "redeemed"


def test_dead_links_name_the_sender_only_to_holders_of_a_real_link(api_a, funded_a, shop):
    canceled_id, canceled = _delivered_link(api_a, funded_a, shop.coffee_usd)
    assert api_a.post(f"/api/v1/rewards/{canceled_id}/cancel").status_code == 200
    _, expiring = _delivered_link(api_a, funded_a, shop.coffee_usd)
    unknown = "A" * 32
    garbage = "not-a-token!"

    pages = {}
    for name, token in {"unknown": unknown, "garbage": garbage, "canceled": canceled}.items():
        response = _client().get(f"/r/{token}")
        pages[name] = (response.status_code, response.content.decode())
    with freeze_time(timezone.now() + timedelta(days=366)):
        response = _client().get(f"/r/{expiring}")
        pages["expired"] = (response.status_code, response.content.decode())

    assert {status for status, _ in pages.values()} == {404}
    assert pages["unknown"][1] == pages["garbage"][1], "an unknown token learns nothing"
    assert "This link is not valid" in pages["unknown"][1] and funded_a.name not in pages["unknown"][1]
    assert "no longer valid" in pages["canceled"][1] and funded_a.name in pages["canceled"][1]
    assert "Acme People Team" in pages["canceled"][1]
    assert "has expired" in pages["expired"][1] and funded_a.name in pages["expired"][1]
    assert _client().post(f"/r/{unknown}/reveal").content.decode() == pages["unknown"][1]


def test_dead_links_get_an_address_rate_limited(api_a, funded_a, shop):
    reward_id, token = _delivered_link(api_a, funded_a, shop.coffee_usd)
    attacker = _client()
    with freeze_time(timezone.now().replace(second=5)):  # one fixed window, wherever the clock is
        for attempt in range(CLAIM_FAILURE_LIMIT_PER_MINUTE):
            assert attacker.get(f"/r/{'B' * 31}{attempt % 10}").status_code == 404

        limited = attacker.get(f"/r/{token}")  # even a valid token, once the address is over the limit

        assert limited.status_code == 429
        assert int(limited["Retry-After"]) == 55
        assert "Please wait" in limited.content.decode()
        assert attacker.post(f"/r/{token}/reveal").status_code == 429
    assert _reward(funded_a, reward_id).status == "delivered"  # the refused request changed nothing
    # another address is not affected
    assert Client(HTTP_HOST="localhost", REMOTE_ADDR="10.0.0.9").get(f"/r/{token}").status_code == 200


def test_an_office_behind_one_address_can_open_its_gifts_up_to_the_flood_limit(api_a, funded_a, shop, monkeypatch):
    _, token = _delivered_link(api_a, funded_a, shop.coffee_usd)
    office = _client()
    monkeypatch.setattr("fulfillment.claim_links.CLAIM_RATE_LIMIT_PER_MINUTE", CLAIM_FAILURE_LIMIT_PER_MINUTE + 11)
    with freeze_time(timezone.now().replace(second=5)):
        for _ in range(CLAIM_FAILURE_LIMIT_PER_MINUTE + 11):  # valid links are not failures
            assert office.get(f"/r/{token}").status_code == 200
        flooded = office.get(f"/r/{token}")
    assert flooded.status_code == 429 and int(flooded["Retry-After"]) == 55


def test_choice_reward_lists_options_and_issues_exactly_one_code(api_a, funded_a, choice_shop):
    shop = choice_shop
    reward_id, token = _delivered_link(api_a, funded_a, shop.choice_usd)
    recipient = _client()

    page = recipient.get(f"/r/{token}").content.decode()

    assert "Choose your gift card" in page and "Reveal code" not in page
    assert str(shop.coffee_usd.id) in page and str(shop.trail_usd.id) in page
    assert str(shop.trail_100.id) not in page  # does not come in 25.00
    refused = recipient.post(f"/r/{token}/choose", {"product_id": str(shop.trail_100.id)})
    assert refused.status_code == 422 and "not one of the options" in refused.content.decode()

    chosen = recipient.post(f"/r/{token}/choose", {"product_id": str(shop.trail_usd.id)})

    assert chosen.status_code == 200
    reward = _reward(funded_a, reward_id)
    code = _code(funded_a, reward_id)
    html = chosen.content.decode()
    assert code in html and "<svg" in html  # the chosen product has a QR code
    assert reward.product_id == shop.trail_usd.id and reward.status == "redeemed"
    assert reward.product_snapshot["name"] == "Trailhead eGift"
    assert reward.product_snapshot["chosen_from"]["product_id"] == str(shop.choice_usd.id)
    # choosing again (same browser, the service directly, or another product) never issues a second code
    again = recipient.post(f"/r/{token}/choose", {"product_id": str(shop.trail_usd.id)})
    assert again.status_code == 200 and code in again.content.decode()
    with tenant_context(funded_a):
        assert reward_choose(reward_id=reward_id, product_id=shop.trail_usd.id).code_encrypted == reward.code_encrypted
        with pytest.raises(Exception, match="already been chosen"):
            reward_choose(reward_id=reward_id, product_id=shop.coffee_usd.id)
        assert Reward.objects.get(pk=reward_id).code_encrypted == reward.code_encrypted
        assert Hold.objects.get(pk=reward.hold_id).status == "captured"
        assert Hold.objects.filter(status="captured").count() == 1
        assert ledger_invariant_violations() == []
        assert RewardEvent.objects.filter(reward_id=reward_id, note__startswith="recipient chose").count() == 1
    other_device = _client()
    assert "Reveal code" in other_device.get(f"/r/{token}").content.decode()  # chosen: the code, on any device
    assert code in other_device.post(f"/r/{token}/reveal").content.decode()


def test_choice_capture_happens_once_even_when_the_hold_is_still_pending(api_a, funded_a, choice_shop):
    """A choice reward whose hold was not captured at fulfilment is captured by the choice, exactly once."""
    reward_id, _ = _delivered_link(api_a, funded_a, choice_shop.choice_usd)
    with tenant_context(funded_a):
        hold = Reward.objects.get(pk=reward_id).hold
        assert hold.status == "captured"  # fulfilment already spent the funds for choice rewards
        reward_choose(reward_id=reward_id, product_id=choice_shop.coffee_usd.id)
        reward_choose(reward_id=reward_id, product_id=choice_shop.coffee_usd.id)
        hold.refresh_from_db()
        assert hold.status == "captured" and ledger_invariant_violations() == []
        from funds.models import LedgerTransaction

        assert LedgerTransaction.objects.filter(reference=hold.reference, kind="capture").count() == 1


def test_codes_get_barcodes_in_the_products_format(api_a, funded_a, shop):
    brand = shop.coffee_usd.brand
    for barcode_format in ("qr", "code128"):
        product = product_create(
            brand=brand, name=f"Lumen {barcode_format}", currency="USD", countries=["US"], denomination_type="fixed",
            denomination_values=["25"], barcode_format=barcode_format,
        )  # fmt: skip
        _, token = _delivered_link(api_a, funded_a, product)
        html = _client().post(f"/r/{token}/reveal").content.decode()
        svg = html[html.index('<div class="barcode">') :]
        assert "<svg" in svg and "<?xml" not in html
    _, plain = _delivered_link(api_a, funded_a, shop.coffee_usd)
    assert '<div class="barcode">' not in _client().post(f"/r/{plain}/reveal").content.decode()


def test_tokens_are_indexed_to_their_own_schema_only(api_a, api_b, funded_a, tenant_b, make_api_client, shop):
    with tenant_context(tenant_b):
        funds_deposit(currency="USD", amount="100.00")
    b_reward_id, b_token = _delivered_link(api_b, tenant_b, shop.coffee_usd, message="From Beta")
    a_reward_id, a_token = _delivered_link(api_a, funded_a, shop.coffee_usd, message="From Alpha")
    sandbox = funded_a.sandbox
    with tenant_context(sandbox):
        funds_deposit(currency="USD", amount="100.00")
    s_reward_id, s_token = _delivered_link(make_api_client(sandbox), sandbox, shop.coffee_usd, message="From Sandbox")

    from orders.claim_tokens import claim_token_hash

    index = dict(ClaimTokenIndex.objects.values_list("token_hash", "tenant__schema_name"))
    assert index[claim_token_hash(a_token)] == funded_a.schema_name
    assert index[claim_token_hash(b_token)] == tenant_b.schema_name
    assert index[claim_token_hash(s_token)] == sandbox.schema_name
    with tenant_context(funded_a):
        assert not Reward.objects.filter(claim_token_hash=claim_token_hash(b_token)).exists()
    with tenant_context(tenant_b):
        assert not Reward.objects.filter(claim_token_hash=claim_token_hash(a_token)).exists()

    assert "From Beta" in _client().get(f"/r/{b_token}").content.decode()
    assert "From Sandbox" in _client().get(f"/r/{s_token}").content.decode()
    assert _reward(tenant_b, b_reward_id).status == "opened"
    assert _reward(sandbox, s_reward_id).status == "opened"
    assert _reward(funded_a, a_reward_id).status == "delivered"
    # a tenant's portal host does not change which schema a token opens
    assert "From Beta" in Client(HTTP_HOST="alpha.localhost").get(f"/r/{b_token}").content.decode()


def test_no_code_pin_or_token_reaches_the_logs(api_a, funded_a, choice_shop, caplog):
    caplog.set_level(logging.DEBUG)
    reward_id, token = _delivered_link(api_a, funded_a, choice_shop.coffee_usd)
    choice_id, choice_token = _delivered_link(api_a, funded_a, choice_shop.choice_usd)
    browser = _client()
    browser.get(f"/r/{token}")
    browser.post(f"/r/{token}/reveal")
    browser.get(f"/r/{token}")
    _client().get(f"/r/{token}")  # used
    browser.get(f"/r/{choice_token}")
    browser.post(f"/r/{choice_token}/choose", {"product_id": str(choice_shop.trail_usd.id)})

    with tenant_context(funded_a):
        secrets = [_code(funded_a, reward_id), _code(funded_a, choice_id), token, choice_token]
        from core import crypto

        secrets += [crypto.decrypt(Reward.objects.get(pk=pk).pin_encrypted) for pk in (reward_id, choice_id)]
    # Strings only: the PIN (8 digits) could match the digits of a timestamp by chance.
    logged = caplog.text + " ".join(
        str(value)
        for record in caplog.records
        for value in vars(record).values()
        if not isinstance(value, (int, float))
    )
    assert any(r.getMessage() == "claim code revealed" for r in caplog.records)
    for secret in secrets:
        assert secret not in logged


def test_page_is_phone_ready_and_loads_nothing_from_other_hosts(api_a, funded_a, shop):
    from catalog.models import Brand

    Brand.objects.filter(pk=shop.coffee_usd.brand_id).update(
        logo_url="https://cdn.example.com/lumen.png",
        terms="Not redeemable for cash.",
        redemption_instructions="Scan it.",
    )
    _, token = _delivered_link(api_a, funded_a, shop.coffee_usd)
    browser = _client()
    pages = [browser.get(f"/r/{token}"), browser.post(f"/r/{token}/reveal"), _client().get(f"/r/{'C' * 32}")]

    for response in pages:
        html = response.content.decode()
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        assert not re.findall(r"<(?:script|link|img)\b[^>]*(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html, re.I)
        assert '<link rel="stylesheet" href="/static/claim/claim.css">' in html
    first = pages[0].content.decode()
    assert "cdn.example.com" not in first and ">LC</span>" in first  # a hot-linked logo is never loaded: initials
    assert "Not redeemable for cash." in first and "Scan it." in first
    from django.contrib.staticfiles import finders

    assert finders.find("claim/claim.css")  # collected with the app's static files, served from our host


def test_recipient_confirms_the_address_of_a_physical_gift(api_a, funded_a, shop):
    body = physical_order(shop.hamper_usd, shop.ground_us)
    response = api_a.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    reward_id = response.json()["rewards"][0]["id"]
    with tenant_context(funded_a):
        url = claim_link_issue(reward_id=reward_id)
        assert claim_link_issue(reward_id=reward_id) == url
    token = url.rsplit("/r/", 1)[1]
    browser = _client()

    page = browser.get(f"/r/{token}").content.decode()
    assert "Where should we send your gift?" in page and 'value="1 Navy Way"' in page

    bad = browser.post(
        f"/r/{token}/address", {**US_ADDRESS, "line1": "", "postal_code": "ABC", "country": "CA"}
    ).content.decode()
    assert 'id="address-line1-errors"><li>This field is required.</li>' in bad
    assert "ships to US" in bad  # the shipping method was priced for the original country

    bad = browser.post(f"/r/{token}/address", {**US_ADDRESS, "postal_code": "ABC"})
    assert bad.status_code == 422 and "Not a valid US postal code" in bad.content.decode()
    with tenant_context(funded_a):
        assert Shipment.objects.get(reward_id=reward_id).address["postal_code"] == "22202"

    saved = browser.post(f"/r/{token}/address", {**US_ADDRESS, "line2": "Apt 4", "country": "us"})
    assert saved.status_code == 200 and "Your address is saved" in saved.content.decode()
    with tenant_context(funded_a):
        shipment = Shipment.objects.get(reward_id=reward_id)
        assert shipment.address["line2"] == "Apt 4" and shipment.address["country"] == "US"
        reward_fulfil(reward_id=reward_id)  # handed to the fulfilment partner: no more changes
    late = browser.post(f"/r/{token}/address", {**US_ADDRESS, "line2": "Apt 5"})
    assert "can no longer change" in late.content.decode()
    with tenant_context(funded_a):
        assert Shipment.objects.get(reward_id=reward_id).address["line2"] == "Apt 4"


def test_order_writes_its_claim_tokens_to_the_public_index_in_the_same_transaction(api_a, funded_a, shop):
    before = ClaimTokenIndex.objects.count()
    bad = api_a.post(
        "/api/v1/orders",
        {
            "type": "link",
            "rewards": [{"product_id": str(shop.coffee_usd.id), "amount": "26.00", "recipient": {"name": "X"}}],
        },
    )
    assert bad.status_code == 422 and ClaimTokenIndex.objects.count() == before
    reward = {"product_id": str(shop.coffee_usd.id), "amount": "25.00", "quantity": 3, "recipient": {"name": "X"}}
    assert api_a.post("/api/v1/orders", {"type": "link", "rewards": [reward]}).status_code == 201
    assert ClaimTokenIndex.objects.count() == before + 3
    assert ClaimTokenIndex.objects.filter(tenant=funded_a).count() >= 3


def test_migration_indexes_links_issued_before_the_index_existed(api_a, funded_a, shop):
    import importlib

    from django.apps import apps
    from django.db import connection

    from orders.claim_tokens import claim_token_hash

    migration = importlib.import_module("tenants.migrations.0002_claim_token_index")
    _, token = _delivered_link(api_a, funded_a, shop.coffee_usd)
    ClaimTokenIndex.objects.all().delete()
    assert _client().get(f"/r/{token}").status_code == 404

    with connection.schema_editor() as editor:
        migration.index_existing_claim_tokens(apps, editor)

    assert ClaimTokenIndex.objects.get(token_hash=claim_token_hash(token)).tenant == funded_a
    assert _client().get(f"/r/{token}").status_code == 200


def _supplier_behaviour(product, **behaviour):
    from catalog.models import Supplier

    supplier = Supplier.objects.get(pk=product.supplier_id)
    supplier.config = {"products": {str(product.id): behaviour}} if behaviour else {}
    supplier.save(update_fields=["config"])


def test_choice_survives_supplier_outages_and_refusals(api_a, funded_a, choice_shop):
    shop = choice_shop
    reward_id, token = _delivered_link(api_a, funded_a, shop.choice_usd)
    browser = _client()

    _supplier_behaviour(shop.trail_usd, fail="retryable")
    outage = browser.post(f"/r/{token}/choose", {"product_id": str(shop.trail_usd.id)})
    assert outage.status_code == 422 and "try again" in outage.content.decode()
    assert "Get my code" in outage.content.decode()  # the choice is kept; retrying needs no new pick
    assert not _reward(funded_a, reward_id).code_encrypted

    _supplier_behaviour(shop.trail_usd)
    retried = browser.post(f"/r/{token}/choose", {"product_id": str(shop.trail_usd.id)})
    assert retried.status_code == 200 and _code(funded_a, reward_id) in retried.content.decode()

    other_id, other_token = _delivered_link(api_a, funded_a, shop.choice_usd)
    _supplier_behaviour(shop.trail_usd, fail="permanent")
    refused = browser.post(f"/r/{other_token}/choose", {"product_id": str(shop.trail_usd.id)})
    html = refused.content.decode()
    assert refused.status_code == 422 and "choose another" in html and str(shop.coffee_usd.id) in html
    reward = _reward(funded_a, other_id)
    assert reward.product_id == shop.choice_usd.id and "chosen_from" not in reward.product_snapshot
    picked = browser.post(f"/r/{other_token}/choose", {"product_id": str(shop.coffee_usd.id)})
    assert picked.status_code == 200 and _code(funded_a, other_id) in picked.content.decode()
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == []


def test_cancel_while_a_choice_is_being_issued_is_refused_and_never_refunds_a_live_card(api_a, funded_a, choice_shop):
    """The choice is recorded and the supplier is issuing (no lock held): a cancel now would refund a card the
    supplier is about to hand out. Refused (retryable) until the code is stored; then it voids and refunds."""
    from fulfillment.choice import choice_record, choice_settle
    from fulfillment.services import reward_issue_code
    from funds.selectors import balance_get, ledger_invariant_violations

    shop = choice_shop
    reward_id, _ = _delivered_link(api_a, funded_a, shop.choice_usd)
    with tenant_context(funded_a):
        reward = choice_record(reward_id=reward_id, product_id=shop.trail_usd.id)  # step 1 done
        available = balance_get(currency="USD").available
    refused = api_a.post(f"/api/v1/rewards/{reward_id}/cancel")
    assert refused.status_code == 409 and refused.json()["retryable"] is True
    assert "being issued" in refused.json()["detail"]
    with tenant_context(funded_a):
        choice_settle(reward_id=reward_id, issued=reward_issue_code(reward=reward))  # steps 2 and 3
        assert balance_get(currency="USD").available == available
    canceled = api_a.post(f"/api/v1/rewards/{reward_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    with tenant_context(funded_a):
        assert _reward(funded_a, reward_id).code_voided_at is not None
        assert balance_get(currency="USD").available == available + 25
        assert ledger_invariant_violations() == []
