"""The portal in real headless Chromium: sign in, balances, the sandbox switch, errors, throttling, TOTP.

Screenshots land in ./var/screenshots/ (not committed) for a person to look at.
"""

import time

import pyotp
import pytest
from django_tenants.utils import tenant_context

from funds.services import funds_deposit
from tenants.services import tenant_sandbox_ensure
from testsupport.browser import SCREENSHOTS
from testsupport.portal import PASSWORD, make_staff


@pytest.fixture
def funded_site(committed_tenant):
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="1250.00")
        funds_deposit(currency="EUR", amount="480.50")
    with tenant_context(tenant_sandbox_ensure(tenant=committed_tenant)):
        funds_deposit(currency="USD", amount="250.00")
    return committed_tenant


def log_in(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_see_balances_switch_to_sandbox_and_sign_out(browser_page, funded_site):
    page = browser_page
    user = make_staff(funded_site, "ada@example.test", "admin")
    page.goto("/")
    assert "/login/" in page.url  # signed out: the login page, with ?next=/
    page.screenshot(path=str(SCREENSHOTS / "portal-login.png"))
    log_in(page, user.email)
    page.wait_for_url("**/")
    assert page.get_by_test_id("available-USD").inner_text().startswith("1,250.00")
    assert page.get_by_test_id("available-EUR").inner_text().startswith("480.50")
    assert page.get_by_test_id("sandbox-banner").count() == 0
    for label in ("Dashboard", "Send", "Bulk", "Orders", "Funds", "Developers", "Team", "Audit"):
        assert page.get_by_role("navigation", name="Main").get_by_role("link", name=label).is_visible()
    page.screenshot(path=str(SCREENSHOTS / "portal-dashboard.png"), full_page=True)

    page.get_by_test_id("mode-switch").click()
    page.get_by_test_id("sandbox-banner").wait_for()
    assert page.get_by_test_id("available-USD").inner_text().startswith("250.00")
    assert page.get_by_test_id("available-EUR").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "portal-dashboard-sandbox.png"), full_page=True)
    page.get_by_role("link", name="Team").click()
    page.wait_for_url("**/team/")
    assert "shared by live and sandbox" in page.get_by_test_id("sandbox-banner").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "portal-team.png"), full_page=True)
    page.get_by_test_id("mode-switch").click()  # back to live
    page.wait_for_url("**/team/")
    assert page.get_by_test_id("sandbox-banner").count() == 0

    page.get_by_role("button", name=user.email).click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")
    assert "You have been signed out." in page.content()
    page.goto("/")
    assert "/login/" in page.url


def test_wrong_password_shows_a_readable_error(browser_page, committed_tenant):
    page = browser_page
    user = make_staff(committed_tenant, "bob@example.test", "viewer")
    log_in(page, user.email, "not-my-password")
    alert = page.get_by_role("alert")
    assert "don't match an active account here" in alert.inner_text()
    assert page.get_by_label("Email").input_value() == user.email  # kept, so only the password is retyped
    page.screenshot(path=str(SCREENSHOTS / "portal-login-error.png"))


def test_sign_in_is_throttled_after_repeated_failures(browser_page, committed_tenant, settings):
    settings.PORTAL_LOGIN_FAILURE_LIMIT = 3
    page = browser_page
    user = make_staff(committed_tenant, "cy@example.test", "viewer")
    for _ in range(3):
        log_in(page, user.email, "guess-guess-guess")
        page.get_by_role("alert").wait_for()
    with page.expect_response(lambda r: r.url.endswith("/login/") and r.request.method == "POST") as info:
        log_in(page, user.email)  # the right password, too late
    assert info.value.status == 429
    assert "Too many failed sign-in attempts" in page.get_by_role("alert").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "portal-login-throttled.png"))


def test_totp_enrolment_then_sign_in_with_a_code(browser_page, committed_tenant):
    page = browser_page
    user = make_staff(committed_tenant, "dee@example.test", "finance")
    log_in(page, user.email)
    page.wait_for_url("**/")
    page.get_by_role("button", name=user.email).click()
    page.get_by_role("link", name="Two-factor authentication").click()
    page.wait_for_url("**/account/two-factor/")
    assert page.locator(".qr svg").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "portal-two-factor.png"), full_page=True)
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor").click()
    page.get_by_text("Two-factor authentication is on").wait_for()

    page.get_by_role("button", name=user.email).click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")
    log_in(page, user.email)
    page.wait_for_url("**/login/two-factor/")
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).at(int(time.time()) + 30))  # the next step
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()


def test_viewer_is_refused_team_and_the_layout_fits_a_phone(browser_page, funded_site):
    page = browser_page
    user = make_staff(funded_site, "eve@example.test", "viewer")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, user.email)
    page.wait_for_url("**/")
    nav = page.get_by_role("navigation", name="Main")
    assert not nav.is_visible()  # folded behind the Menu button on a phone
    page.get_by_role("button", name="Menu", exact=True).click()
    assert nav.get_by_role("link", name="Orders").is_visible()
    assert nav.get_by_role("link", name="Team").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "portal-dashboard-phone.png"), full_page=True)
    response = page.goto("/team/")
    assert response.status == 403
    assert page.get_by_test_id("forbidden").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
