"""A recipient signs in to the points page with the emailed link and redeems a reward, in Chromium, on a
laptop (1366 px) and on a phone (390 px)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from funds.services import funds_deposit
from orders.models import Order
from programs.services import program_create
from testsupport.browser import SCREENSHOTS, chromium_page
from testsupport.catalog import make_shop

from .conftest import ACTOR, KUDOS, books_violations, make_person


@pytest.mark.parametrize("width,height", [(1366, 900), (390, 844)])
def test_recipient_redeems_on_the_points_page(static_from_points, live_http, committed_tenant, mailoutbox,
                                             width, height):  # fmt: skip
    from points.services import points_award

    connection.set_schema_to_public()
    shop = make_shop()
    person = make_person(committed_tenant, "E-7", name="Nur Aisyah", email="nur@example.test")
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
        program = program_create(slug="kudos", name="Kudos", points=KUDOS, allowed_product_ids=[shop.coffee_usd.id])
        points_award(program=program, person=person, points=6000, reason="Customer hero", actor=ACTOR)
    port = live_http.rsplit(":", 1)[1]
    with chromium_page(f"http://{committed_tenant.slug}.localhost:{port}") as page:
        page.set_viewport_size({"width": width, "height": height})
        page.goto("/p/")
        page.get_by_label("Email address").fill("nur@example.test")
        page.get_by_role("button", name="Email me a sign-in link").click()
        page.get_by_test_id("link-sent").wait_for()
        link = re.search(r"http://\S+/p/login/\S+", mailoutbox[-1].body).group(0)
        page.goto(link)
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_test_id("balance").inner_text() == "6000 Kudos"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SCREENSHOTS / f"points-page-{width}.png"), full_page=True)
        reward = page.get_by_test_id("reward").filter(has_text="50.00 USD")
        assert "5000 Kudos" in reward.inner_text()
        asked = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))  # changed their mind
        reward.get_by_role("button", name="Redeem").click()
        assert asked == ["Spend 5000 Kudos on Lumen Coffee 50.00 USD? This cannot be undone."]
        assert page.get_by_test_id("balance").inner_text() == "6000 Kudos"  # nothing spent
        page.once("dialog", lambda dialog: dialog.accept())
        reward.get_by_role("button", name="Redeem").click()
        page.get_by_test_id("redeemed").wait_for()
        assert "You spent 5000 Kudos; 1000 left." in page.locator("main").inner_text()
        page.goto("/p/")
        assert page.get_by_test_id("balance").inner_text() == "1000 Kudos"
        assert page.get_by_test_id("reward").filter(has_text="25.00 USD").get_by_role("button").is_disabled()
    with tenant_context(committed_tenant):
        assert Order.objects.get().rewards.get().recipient_email == "nur@example.test"
    assert books_violations(committed_tenant) == []


@pytest.fixture
def static_from_points(settings) -> None:
    settings.WHITENOISE_USE_FINDERS = True
