"""Browser test in headless Chromium: orders list → a reward's timeline → funds; a viewer cannot reach funds."""

from django_tenants.utils import tenant_context

from testsupport.browser import SCREENSHOTS
from testsupport.catalog import make_shop
from testsupport.orders import digital_order
from testsupport.portal import PASSWORD, make_staff


def login(page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def test_orders_reward_and_funds_pages(browser_page, committed_tenant):
    from django.db import connection

    from funds.services import funds_deposit
    from tenants.services import api_key_create
    from testsupport.api import ApiClient

    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="500.00", reference="opening")
    shop = make_shop()
    connection.set_schema_to_public()
    key, raw = api_key_create(tenant=committed_tenant, scopes=["read", "write"])
    api = ApiClient(raw, key)  # writes commit: the live server thread must see them
    body = digital_order(shop.coffee_usd, "25.00", po_number="PO-BROWSER")
    body["rewards"][0]["recipient"] = {"name": "Katherine Johnson", "email": "katherine@example.com"}
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    admin = make_staff(committed_tenant, "admin@browser.test", "admin")
    viewer = make_staff(committed_tenant, "viewer@browser.test", "viewer")
    page = browser_page

    login(page, admin.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Orders").click()
    page.get_by_test_id("orders-table").get_by_text("Katherine Johnson").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "orders-list.png"), full_page=True)
    page.get_by_label("Recipient").fill("katherine")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="Katherine Johnson").click()
    page.get_by_test_id("timeline").wait_for()
    assert "Pending" in page.get_by_test_id("timeline").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "reward-detail.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "reward-detail-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/funds/")
    page.get_by_test_id("funds-balances").get_by_text("USD").first.wait_for()
    assert "opening" in page.get_by_test_id("statement-table").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "funds.png"), full_page=True)
    page.get_by_label("Amount").fill("250.00")
    page.get_by_label("Reference").fill("WIRE-7")
    page.get_by_role("button", name="Tell the operator").click()
    page.get_by_text("Deposit request for 250.00 USD sent").wait_for()
    page.get_by_role("button", name=admin.email).click()
    page.get_by_role("button", name="Sign out").click()

    login(page, viewer.email)
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Orders").count() == 1
    assert nav.get_by_role("link", name="Funds").count() == 0
    response = page.goto("/funds/")
    assert response.status == 403
    page.screenshot(path=str(SCREENSHOTS / "funds-viewer-refused.png"), full_page=True)
