"""A discount voucher bought with points on the recipients' points page, in Chromium, on a laptop (1366 px) and a
phone (390 px), in English and then in Malay: the page names what the voucher takes off, not a face value, the
company's free (zero-cost) discount is not for sale, and both ledgers balance afterwards."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from catalog.services import brand_upsert, product_create
from funds.services import funds_deposit
from orders.models import Reward
from programs.services import program_create
from testsupport.browser import SCREENSHOTS, chromium_page

from .conftest import ACTOR, KUDOS, books_violations, make_person


@pytest.fixture
def static_from_points(settings) -> None:
    settings.WHITENOISE_USE_FINDERS = True


@pytest.mark.parametrize("width,height", [(1366, 900), (390, 844)])
def test_a_recipient_buys_a_discount_with_points_in_english_and_in_malay(
    static_from_points, live_http, committed_tenant, mailoutbox, width, height
):
    from points.services import points_award

    connection.set_schema_to_public()
    brand = brand_upsert(slug=f"kedai-kopi-{committed_tenant.slug}", name="Kedai Kopi")
    priced = product_create(
        brand=brand, name="Kedai Kopi 20% off", type="discount", currency="USD", countries=["US"],
        denomination_type="fixed", denomination_values=["5"], discount_kind="percent", discount_value="20",
        valid_until=date(2027, 12, 31),
    )  # fmt: skip
    free = product_create(
        brand=brand, name="Kedai Kopi free drink", type="discount", currency="USD", countries=["US"],
        denomination_type="fixed", denomination_values=["3"], discount_kind="amount", discount_value="3",
        zero_cost=True,
    )  # fmt: skip
    person = make_person(committed_tenant, "E-9", name="Nur Aisyah", email="nur@example.test")
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
        program = program_create(slug="kudos", name="Kudos", points=KUDOS, allowed_product_ids=[priced.id, free.id])
        points_award(program=program, person=person, points=1200, reason="<i>Team</i> player", actor=ACTOR)
    port = live_http.rsplit(":", 1)[1]
    with chromium_page(f"http://{committed_tenant.slug}.localhost:{port}") as page:
        page.set_viewport_size({"width": width, "height": height})
        page.goto("/p/")
        page.get_by_label("Email address").fill("nur@example.test")
        page.get_by_role("button", name="Email me a sign-in link").click()
        page.get_by_test_id("link-sent").wait_for()
        page.goto(re.search(r"http://\S+/p/login/\S+", mailoutbox[-1].body).group(0))
        page.get_by_role("button", name="Sign in").click()

        assert page.get_by_test_id("balance").inner_text() == "1200 Kudos"
        offers = page.get_by_test_id("reward")
        assert offers.count() == 1  # the free drink is the company's to give, not for sale
        offer = offers.first
        assert offer.get_by_test_id("discount-headline").inner_text() == "20% off at Kedai Kopi until 31 December 2027"
        assert "500 Kudos" in offer.inner_text() and "5.00 USD" not in offer.inner_text()
        assert "<i>Team</i> player" in page.locator("table.history").inner_text()  # shown as text, not markup
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SCREENSHOTS / f"points-discount-en-{width}.png"), full_page=True)
        page.once("dialog", lambda dialog: dialog.accept())  # "Spend 500 Kudos on …? This cannot be undone."
        offer.get_by_role("button").click()
        page.get_by_test_id("redeemed").wait_for()
        text = page.locator("main").inner_text()
        assert (
            "20% off at Kedai Kopi until 31 December 2027: your voucher is being emailed to nur@example.test." in text
        )
        assert "You spent 500 Kudos; 700 left." in text
        page.screenshot(path=str(SCREENSHOTS / f"points-discount-done-en-{width}.png"), full_page=True)

        page.goto("/p/?lang=ms")
        assert page.locator("html").get_attribute("lang") == "ms"
        offer = page.get_by_test_id("reward").first
        assert offer.get_by_test_id("discount-headline").inner_text() == (
            "Diskaun 20% di Kedai Kopi sehingga 31 Disember 2027"
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SCREENSHOTS / f"points-discount-ms-{width}.png"), full_page=True)
        asked = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        offer.get_by_role("button").click()
        page.get_by_test_id("redeemed").wait_for()
        assert asked == [
            "Belanjakan 500 Kudos untuk Diskaun 20% di Kedai Kopi sehingga 31 Disember 2027? "
            "Ini tidak boleh dibatalkan."
        ]
        assert (
            "Diskaun 20% di Kedai Kopi sehingga 31 Disember 2027"
            in page.get_by_test_id("redeemed-discount").inner_text()
        )
        page.screenshot(path=str(SCREENSHOTS / f"points-discount-done-ms-{width}.png"), full_page=True)
        page.goto("/p/")
        assert page.get_by_test_id("balance").inner_text().startswith("200 ")
        assert page.get_by_test_id("reward").first.get_by_role("button").is_disabled()  # 500 > 200
    with tenant_context(committed_tenant):
        bought = Reward.objects.filter(recipient_email="nur@example.test")
        assert bought.count() == 2 and {r.product_snapshot["discount"]["kind"] for r in bought} == {"percent"}
        assert {r.charge_amount for r in bought} == {5}
    assert books_violations(committed_tenant) == []
