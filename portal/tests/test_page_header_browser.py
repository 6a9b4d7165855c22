"""Browser test in headless Chromium: a page's header actions stay together beside the title on a laptop and wrap
below it on a phone (review: the Reports page's five downloads were spread across the header at 1366 px and ran
off a 390 px screen, making the whole page scroll sideways)."""

from itertools import pairwise

from testsupport.browser import SCREENSHOTS
from testsupport.portal import make_staff

from .test_orders_funds_browser import login


def test_reports_downloads_sit_together_and_fit_a_phone(browser_page, committed_tenant):
    finance = make_staff(committed_tenant, "finance@header.test", "finance")
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, finance.email)
    page.goto("/reports/")
    buttons = page.locator(".page-header a.btn")
    assert buttons.count() >= 4
    boxes = [buttons.nth(i).bounding_box() for i in range(buttons.count())]
    for left, right in pairwise(boxes):
        assert right["x"] - (left["x"] + left["width"]) < 24  # side by side, not spread over the header
    page.screenshot(path=str(SCREENSHOTS / "reports-header.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/reports/")
    page.screenshot(path=str(SCREENSHOTS / "reports-header-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390


def test_a_reward_reference_stays_on_one_line_on_a_phone(browser_page, committed_tenant):
    """Review: on Find at 390 px a reference broke at its hyphen ("RW-3D7K-" above "BJ"), hard to read or copy."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from tenants.services import api_key_create
    from testsupport.api import ApiClient
    from testsupport.catalog import make_shop
    from testsupport.orders import digital_order

    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
    shop = make_shop()
    connection.set_schema_to_public()
    key, raw = api_key_create(tenant=committed_tenant, scopes=["read", "write"])
    body = ApiClient(raw, key).post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00")).json()
    reference = body["rewards"][0]["reference"]
    admin = make_staff(committed_tenant, "admin@header.test", "admin")
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, admin.email)
    page.goto(f"/search/?q={reference}")
    link = page.get_by_role("link", name=reference)
    assert link.evaluate("element => element.getClientRects().length") == 1
    page.screenshot(path=str(SCREENSHOTS / "find-reference-phone.png"), full_page=True)
