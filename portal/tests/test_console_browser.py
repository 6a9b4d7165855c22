"""Browser test in headless Chromium: an operator signs in on the public host, opens tenants and health."""

from __future__ import annotations

import pytest

from .conftest import PASSWORD, SCREENSHOTS


def test_browser_operator_console(static_from_app_dirs, live_http, committed_tenant):
    import os
    import shutil
    from pathlib import Path

    from django.db import connections

    from .conftest import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    from accounts.models import User

    if not User.objects.filter(email="browser-op@operator.test").exists():
        User.objects.create_user("browser-op@operator.test", PASSWORD, is_staff=True)
    from django_tenants.utils import tenant_context

    from funds.selectors import balance_get, ledger_invariant_violations
    from funds.services import deposit_request_create

    with tenant_context(committed_tenant):
        deposit_request_create(currency="USD", amount="750.00", reference="WIRE-B1", requested_by="f@a.test")
    port = live_http.rsplit(":", 1)[1]
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(base_url=f"http://localhost:{port}", viewport={"width": 1280, "height": 800})
            context.set_default_timeout(15_000)
            page = context.new_page()
            try:
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
                context.close()
                browser.close()
                connections.close_all()
    finally:
        connections.close_all()
        User.objects.filter(email="browser-op@operator.test").delete()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
