"""Browser test in headless Chromium: an operator signs in on the public host, opens tenants and health."""

from __future__ import annotations

from testsupport.browser import SCREENSHOTS, chromium_page
from testsupport.portal import PASSWORD


def test_browser_operator_console(static_from_app_dirs, live_http, committed_tenant):
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from funds.deposit_requests import deposit_request_create
    from funds.selectors import balance_get, ledger_invariant_violations

    if not User.objects.filter(email="browser-op@operator.test").exists():
        User.objects.create_user("browser-op@operator.test", PASSWORD, is_staff=True)
    with tenant_context(committed_tenant):
        deposit_request_create(currency="USD", amount="750.00", reference="WIRE-B1", requested_by="f@a.test")
    port = live_http.rsplit(":", 1)[1]
    try:
        with chromium_page(f"http://localhost:{port}") as page:
            page.goto("/console/login/")
            page.get_by_label("Email").fill("browser-op@operator.test")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/console/tenants/" in url)
            assert page.get_by_role("heading", name="Tenants", exact=True).is_visible()
            page.screenshot(path=str(SCREENSHOTS / "console-tenants.png"), full_page=True)
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Health").click()
            page.wait_for_url(lambda url: "/console/health/" in url)
            assert page.get_by_role("heading", name="Queues", exact=True).is_visible()
            page.screenshot(path=str(SCREENSHOTS / "console-health.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})  # a phone: the menu folds behind a toggle
            page.get_by_role("button", name="Menu").click()
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Deposits").click()
            page.wait_for_url(lambda url: "/console/deposits/" in url)
            assert page.get_by_role("heading", name="Deposit requests").is_visible()
            page.screenshot(path=str(SCREENSHOTS / "console-deposits-phone.png"), full_page=True)
            page.set_viewport_size({"width": 1280, "height": 800})
            page.get_by_role("link", name="Approve & credit…").click()  # a page to confirm, no money moved
            confirm = page.get_by_test_id("deposit-confirm")
            assert f"Credit 750.00 USD to {committed_tenant.name}?" in confirm.inner_text()
            page.get_by_role("button", name="Credit 750.00 USD").click()  # the box not ticked
            assert "Tick the box to confirm" in page.get_by_test_id("deposit-confirm").inner_text()
            with tenant_context(committed_tenant):
                assert balance_get(currency="USD") is None or balance_get(currency="USD").available == 0
            page.screenshot(path=str(SCREENSHOTS / "console-deposit-confirm.png"), full_page=True)
            page.get_by_label("I have checked the bank statement").check()
            page.get_by_role("button", name="Credit 750.00 USD").click()
            page.wait_for_url(lambda url: url.endswith("/console/deposits/"))
            credited = page.get_by_role("status").first.inner_text()
            assert f"750.00 USD credited to {committed_tenant.name}" in credited
            with tenant_context(committed_tenant):
                assert balance_get(currency="USD").available == 750
                assert ledger_invariant_violations() == []
    finally:
        User.objects.filter(email="browser-op@operator.test").delete()
