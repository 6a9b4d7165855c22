"""The Developers page in real headless Chromium: create an API key, see it once, revoke it (then 401 on the API);
a user of one tenant cannot sign in to, or open, another tenant's portal. Screenshots go to ./var/screenshots/.
"""

import re

from tenants.models import ApiKey
from testsupport.api import http_json
from testsupport.browser import SCREENSHOTS
from testsupport.portal import PASSWORD, make_staff

RAW_KEY = re.compile(r"rp_live_[a-z0-9]{12}_[A-Za-z0-9_-]+")


def log_in(page, email: str, password: str = PASSWORD, base: str = "") -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_admin_creates_sees_once_and_revokes_an_api_key(browser_page, committed_tenant, live_http):
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())  # the revoke confirmation
    admin = make_staff(committed_tenant, "dev-admin@example.test", "admin")
    log_in(page, admin.email)
    page.wait_for_url("**/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Developers").click()
    page.wait_for_url("**/developers/")
    page.screenshot(path=str(SCREENSHOTS / "portal-developers-empty.png"), full_page=True)

    page.locator("#id_name").fill("CRM sync")
    page.locator("#id_allowed_cidrs").fill("not-a-network")
    page.get_by_role("button", name="Create API key").click()
    assert "is not a valid CIDR" in page.locator(".field.has-error").inner_text()
    page.locator("#id_allowed_cidrs").fill("")
    page.get_by_role("button", name="Create API key").click()
    raw_key = page.get_by_test_id("new-secret").inner_text().strip()
    assert RAW_KEY.fullmatch(raw_key), raw_key
    assert "only time it is shown" in page.content()
    page.screenshot(path=str(SCREENSHOTS / "portal-developers-key-once.png"), full_page=True)
    status, _, _ = http_json("GET", f"{live_http}/api/v1/balances", key=raw_key)
    assert status == 200

    page.reload()  # the page came from a redirect: a reload neither creates a second key nor shows this one again
    assert "shown once and is not shown again" in page.get_by_test_id("already-shown").inner_text()
    assert raw_key not in page.content()
    assert ApiKey.objects.filter(tenant=committed_tenant).count() == 1
    page.screenshot(path=str(SCREENSHOTS / "portal-developers-key-reloaded.png"), full_page=True)

    page.get_by_role("link", name="Back to Developers").click()
    page.wait_for_url("**/developers/")
    assert raw_key not in page.content()  # never shown again
    key_id = raw_key.split("_")[2]
    row = page.get_by_test_id(f"api-key-{key_id}")
    assert f"rp_live_{key_id}…" in row.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "portal-developers.png"), full_page=True)
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_url("**/developers/")
    assert "Revoked" in page.get_by_test_id(f"api-key-{key_id}").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "portal-developers-revoked.png"), full_page=True)
    status, body, _ = http_json("GET", f"{live_http}/api/v1/balances", key=raw_key)
    assert status == 401, body


def test_a_user_of_one_tenant_cannot_sign_in_to_or_open_another_tenants_portal(
    browser_page, committed_tenant, live_http
):
    page = browser_page
    port = live_http.rsplit(":", 1)[1]
    other = f"http://beta.localhost:{port}"
    admin = make_staff(committed_tenant, "dev-admin-a@example.test", "admin")

    log_in(page, admin.email, base=other)  # the right password, the wrong tenant: the normal error
    assert "don't match an active account here" in page.get_by_role("alert").inner_text()
    assert "/login/" in page.url
    page.screenshot(path=str(SCREENSHOTS / "portal-login-other-tenant.png"))

    log_in(page, admin.email)  # on its own tenant the same credentials work
    page.wait_for_url("**/")
    page.goto("/developers/")
    assert page.url.endswith("/developers/")
    # Carry the signed-in session cookie over to the other tenant's host: it opens nothing there.
    cookies = page.context.cookies()
    assert any(c["name"] == "sessionid" for c in cookies)
    page.context.add_cookies(
        [
            {"name": c["name"], "value": c["value"], "url": other}
            for c in cookies
            if c["name"] in ("sessionid", "csrftoken")
        ]
    )
    for path in ("/developers/", "/", "/team/"):
        page.goto(f"{other}{path}")
        assert page.url.startswith(f"{other}/login/"), page.url
