"""Send a reward with the Django client: catalogue, form per product, errors next to fields, the cost
preview (FX and fee), the idempotent double submit, roles and tenant isolation; and the dashboard charts."""

import re
from decimal import Decimal

import pytest
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from fulfillment.services import reward_fulfil
from funds.services import funds_deposit
from orders.models import Order, Reward
from testsupport.portal import portal_client, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(signed_in, funded_a, shop):
    client, _ = signed_in("manager")
    return client


def _hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html)[1]


def _post(client, product, action="preview", **fields):
    page = client.get(f"/send/{product.id}/").content.decode()
    data = {
        "amount": "25.00",
        "recipients": "Ada Lovelace, ada@example.com",
        "delivery_method": "email",
        "message": "Thanks for the release!",
        "sender_name": "Platform Team",
        "idempotency_key": _hidden(page, "idempotency_key"),
        "action": action,
        **fields,
    }
    return client.post(f"/send/{product.id}/", data)


def test_catalogue_lists_brand_cards_and_filters_by_currency(manager, shop):
    page = manager.get("/send/").content.decode()
    assert "Lumen Coffee eGift" in page and "Quire Books UK" in page
    assert 'class="brand-logo logo-tile" role="img" aria-label="Lumen Coffee"' in page and ">LC</span>" in page
    gbp = manager.get("/send/", {"currency": "GBP"}).content.decode()
    assert "Quire Books UK" in gbp and "Lumen Coffee eGift" not in gbp
    physical = manager.get("/send/", {"type": "physical", "country": "DE"}).content.decode()
    assert "Harvest Mug" in physical and "Harvest Hamper<" not in physical


def test_catalogue_pages_keep_the_filters(manager, shop, monkeypatch):
    from portal.views import send

    monkeypatch.setattr(send, "CATALOGUE_PAGE", 1)
    first = manager.get("/send/", {"currency": "USD"}).content.decode()
    assert first.count('data-testid="product-card"') == 1
    assert 'rel="next"' in first and "currency=USD&amp;page=2" in first  # the filter follows the pager
    second = manager.get("/send/", {"currency": "USD", "page": "2"}).content.decode()
    assert second.count('data-testid="product-card"') == 1 and 'rel="prev"' in second
    names = re.compile(r'class="stretched">([^<]+)<')
    assert names.findall(first) != names.findall(second)  # another gift, not the same one again
    assert "Quire Books UK" not in first + second  # GBP: filtered out on every page


def test_form_offers_fixed_amounts_as_a_select_and_ranges_as_a_bounded_number(manager, shop):
    fixed = manager.get(f"/send/{shop.coffee_usd.id}/").content.decode()
    assert '<select name="amount"' in fixed and '<option value="25.00">25.00 USD</option>' in fixed
    ranged = manager.get(f"/send/{shop.books_gbp.id}/").content.decode()
    # a text field (a number input refuses "1,000"), its bounds said in words and checked on submit
    assert re.search(r'<input type="text" name="amount"[^>]*inputmode="decimal"', ranged)
    assert "Any amount from 5.00 to 500.00 GBP." in ranged
    typed = _post(manager, shop.books_gbp, amount="1,000")
    assert "Choose an amount from 5.00 to 500.00 GBP." in typed.content.decode()
    for bad in ("12.345", "1.000,00", "١٢"):
        refused = _post(manager, shop.books_gbp, amount=bad)
        assert 'class="field has-error"' in refused.content.decode() and not refused.context.get("quote"), bad
    assert _post(manager, shop.books_gbp, amount="250.5").context["quote"]
    physical = manager.get(f"/send/{shop.hamper_usd.id}/").content.decode()
    assert "Shipping address" in physical and "US Ground" in physical
    assert manager.get("/send/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_preview_shows_the_cost_and_the_email_without_sending(manager, shop, tenant_a):
    response = _post(manager, shop.coffee_usd, recipients="Ada, ada@example.com\nGrace, grace@example.com")
    assert response.status_code == 200
    quote = response.context["quote"]
    assert (quote.total, quote.currency, quote.count) == (Decimal("50.00"), "USD", 2)
    page = response.content.decode()
    assert "2 × 25.00 = 50.00 USD" in page
    assert "Confirm and send 50.00 USD" in page
    preview = response.context["preview_html"]
    assert "Thanks for the release!" in preview and "XXXX-XXXX-XXXX-0000" in preview and "Platform Team" in preview
    assert 'srcdoc="&lt;!doctype html&gt;' in page  # the email is escaped into the iframe attribute
    with tenant_context(tenant_a):
        assert Order.objects.count() == 0


def test_preview_converts_into_the_funding_currency_with_the_fx_fee(manager, shop, settings):
    settings.FX_FEE_PERCENT = 1.0
    response = _post(manager, shop.books_gbp, amount="20.00", funding_currency="USD")
    quote = response.context["quote"]
    # 20 GBP at 1.25 = 25.00 USD, 1 % fee = 0.25 USD: what order_create would hold.
    assert (quote.charge, quote.fees, quote.total, quote.fx_rate) == (
        Decimal("25.00"),
        Decimal("0.25"),
        Decimal("25.25"),
        Decimal("1.25"),
    )
    page = response.content.decode()
    assert "1 GBP = 1.25 USD" in page and "25.25 USD" in page


def test_form_and_service_errors_show_next_to_their_fields(manager, shop):
    response = _post(manager, shop.coffee_usd, recipients="Ada Lovelace, not-an-email\n, x@example.com")
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert errors["recipients"] == [
        "Line 1: “not-an-email” is not an email address.",
        "Line 2: write “name, email” (and optionally “, phone”).",
    ]
    page = response.content.decode()
    assert 'id="id_recipients_error"' in page
    # screen readers: the field is marked invalid and points at its error list
    textarea = re.search(r"<textarea[^>]*name=\"recipients\"[^>]*>", page).group(0)
    assert 'aria-invalid="true"' in textarea and "id_recipients_error" in textarea

    response = _post(manager, shop.books_gbp, amount="600")  # the form's own range check
    assert "amount" in response.context["form"].errors

    # Errors from order_create's planner (keyed rewards[0].recipient.phone) land on the recipients field.
    response = _post(manager, shop.coffee_usd, delivery_method="sms", recipients="Ada, ada@example.com")
    assert response.status_code == 422
    assert response.context["form"].errors["recipients"] == [
        "Recipient 1 (Ada): SMS delivery needs the recipient's phone (E.164)."
    ]
    response = _post(manager, shop.coffee_usd, deliver_at="2001-01-01T10:00")
    assert "in the future" in response.context["form"].errors["deliver_at"][0]


def test_insufficient_funds_is_shown_before_and_refused_on_confirm(manager, shop, tenant_a):
    many = "\n".join(f"Person {i}, p{i}@example.com" for i in range(21))  # 21 x 50 > 1,000 USD
    preview = _post(manager, shop.coffee_usd, amount="50.00", recipients=many)
    assert "not enough for this order" in preview.content.decode()
    page = preview.content.decode()
    response = _post(
        manager,
        shop.coffee_usd,
        action="send",
        amount="50.00",
        recipients=many,
        quote_hash=_hidden(page, "quote_hash"),
        idempotency_key=_hidden(page, "idempotency_key"),
    )
    assert response.status_code == 422
    assert "Available USD funds do not cover" in " ".join(response.context["form"].non_field_errors())
    with tenant_context(tenant_a):
        assert Order.objects.count() == 0


def test_confirm_sends_once_even_when_submitted_twice(manager, shop, tenant_a):
    preview = _post(manager, shop.coffee_usd).content.decode()
    data = {
        "amount": "25.00",
        "recipients": "Ada Lovelace, ada@example.com",
        "delivery_method": "email",
        "message": "Thanks for the release!",
        "sender_name": "Platform Team",
        "idempotency_key": _hidden(preview, "idempotency_key"),
        "quote_hash": _hidden(preview, "quote_hash"),
        "action": "send",
    }
    first = manager.post(f"/send/{shop.coffee_usd.id}/", data)
    second = manager.post(f"/send/{shop.coffee_usd.id}/", data)  # the double click
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    with tenant_context(tenant_a):
        order = Order.objects.get()
        assert order.created_by_email.startswith("manager")
        assert AuditEvent.objects.filter(action="order.create", object_id=str(order.id)).count() == 1
    assert first["Location"] == f"/send/orders/{order.id}/"
    done = manager.get(first["Location"]).content.decode()
    assert "Ada Lovelace" in done and "25.00 USD" in done and str(order.id) in done


def test_changed_details_after_the_preview_are_priced_again_not_sent(manager, shop, tenant_a):
    preview = _post(manager, shop.coffee_usd).content.decode()
    response = _post(
        manager,
        shop.coffee_usd,
        action="send",
        amount="50.00",  # changed after the preview
        idempotency_key=_hidden(preview, "idempotency_key"),
        quote_hash=_hidden(preview, "quote_hash"),
    )
    assert response.status_code == 200 and response.context["quote"].total == Decimal("50.00")
    with tenant_context(tenant_a):
        assert Order.objects.count() == 0


def test_viewers_and_finance_cannot_send(signed_in, shop):
    for role in ("viewer", "finance"):
        client, _ = signed_in(role)
        assert client.get("/send/").status_code == 403
        assert client.get(f"/send/{shop.coffee_usd.id}/").status_code == 403
        client.logout()


def test_another_tenants_order_is_not_found(manager, shop, tenant_b, staff):
    preview = _post(manager, shop.coffee_usd).content.decode()
    sent = _post(
        manager,
        shop.coffee_usd,
        action="send",
        idempotency_key=_hidden(preview, "idempotency_key"),
        quote_hash=_hidden(preview, "quote_hash"),
    )
    other = portal_client(tenant_b)
    user = staff("admin", "boss@beta.test", tenant=tenant_b)
    sign_in(other, user.email)
    assert other.get(sent["Location"]).status_code == 404


def test_sandbox_mode_sends_from_the_sandbox_twin(manager, shop, tenant_a):
    with tenant_context(tenant_a.sandbox):
        funds_deposit(currency="USD", amount="100.00")
    manager.post("/mode/", {"mode": "sandbox", "next": "/send/"})
    preview = _post(manager, shop.coffee_usd).content.decode()
    assert "100.00 USD available (sandbox test funds)" in preview
    _post(
        manager,
        shop.coffee_usd,
        action="send",
        idempotency_key=_hidden(preview, "idempotency_key"),
        quote_hash=_hidden(preview, "quote_hash"),
    )
    with tenant_context(tenant_a.sandbox):
        assert Order.objects.count() == 1
    with tenant_context(tenant_a):
        assert Order.objects.count() == 0


def test_dashboard_charts_spend_by_program_and_rewards_by_status(
    manager, funded_a, shop, django_assert_max_num_queries
):
    preview = _post(manager, shop.coffee_usd, recipients="A, a@example.com\nB, b@example.com").content.decode()
    _post(
        manager,
        shop.coffee_usd,
        action="send",
        recipients="A, a@example.com\nB, b@example.com",
        idempotency_key=_hidden(preview, "idempotency_key"),
        quote_hash=_hidden(preview, "quote_hash"),
    )
    page = manager.get("/").content.decode()
    assert "Pending: 2" in page and 'data-testid="delivery-rate">—<' in page
    assert "Nothing spent this month yet." in page  # held, not yet spent
    with tenant_context(funded_a):
        first = Reward.objects.order_by("position").first()
        reward_fulfil(reward_id=first.id)  # one delivered (its hold captured), one still pending
    with django_assert_max_num_queries(12):
        page = manager.get("/").content.decode()
    assert '<title id="spend-usd-title">Spend this month by program, USD</title>' in page
    assert "No program: 25.00 USD" in page  # the chart's <desc>
    assert '<title id="rewards-by-status-title">Rewards by status</title>' in page
    assert "Pending: 1" in page and "Delivered: 1" in page
    assert 'data-testid="delivery-rate">100.0 %<' in page


def test_a_malaysian_address_offers_the_states_and_the_server_still_checks_them(manager, shop, tenant_a):
    from catalog.services import product_create, shipping_method_upsert

    box = product_create(brand=shop.hamper_usd.brand, name="Batik Box", type="physical", currency="MYR",
                         countries=["MY"], denomination_type="fixed", denomination_values=["80"])  # fmt: skip
    parcel = shipping_method_upsert(name="Standard (Malaysia)", carrier="Kenari Express", countries=["MY"],
                                    price="8.00", currency="MYR", estimated_days=3)  # fmt: skip

    page = manager.get(f"/send/{box.id}/").content.decode()

    state = re.search(r'<select name="ship_state".*?</select>', page, re.S).group(0)
    assert state.count("<option") == 17 and ">Wilayah Persekutuan Labuan</option>" in state  # 16 and "Choose…"
    assert '<input type="text" name="ship_state"' in manager.get(f"/send/{shop.hamper_usd.id}/").content.decode()
    address = {"ship_name": "Siti", "ship_line1": "Jalan Ampang 12", "ship_city": "Kuala Lumpur",
               "ship_postal_code": "50450", "ship_country": "MY", "shipping_method": str(parcel.id)}  # fmt: skip
    refused = _post(manager, box, amount="80.00", delivery_method="shipment", ship_state="Atlantis", **address)
    assert refused.status_code == 422, refused.context["form"].errors
    assert "Not a state of MY" in refused.context["form"].errors["ship_state"][0]
    with tenant_context(tenant_a):
        assert not Order.objects.exists()


def test_the_preview_says_before_confirming_that_an_order_will_wait_for_approval(manager, funded_a, shop):
    """Review: nothing said an order over the approval threshold would wait until the page after the money moved."""
    from tenants.policies import approval_policy_set

    approval_policy_set(tenant=funded_a, policy={"thresholds": {"USD": "20.00"}}, actor=None)
    small = _post(manager, shop.coffee_usd, amount="10.00").content.decode()
    assert 'data-testid="approval-note"' not in small and "Confirm and send" in small
    preview = _post(manager, shop.coffee_usd).content.decode()  # 25.00 USD, over the threshold
    assert 'data-testid="approval-note"' in preview and "needs a second person's approval" in preview
    assert "and ask for approval</button>" in preview and "Confirm and send" not in preview
    sent = _post(manager, shop.coffee_usd, action="send", quote_hash=_hidden(preview, "quote_hash"))
    assert sent.status_code in (200, 302)
    with tenant_context(funded_a):
        assert Order.objects.get().status == "pending_approval"  # what the note promised
