"""Send a reward in real headless Chromium: pick a gift, preview the email and the cost, confirm, and watch
real Celery workers deliver it to the SMTP sink; a viewer is refused; screenshots in ./var/screenshots/."""

import time
import uuid

import pytest
from django_tenants.utils import tenant_context

from funds.services import funds_deposit
from testsupport.browser import SCREENSHOTS
from testsupport.catalog import make_shop
from testsupport.portal import make_staff

from .test_browser import log_in

pytestmark = pytest.mark.worker


def test_send_a_digital_reward_and_see_it_delivered(browser_page, committed_tenant, celery_worker_process, smtp_server):
    page = browser_page
    shop = make_shop()
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="500.00")
    user = make_staff(committed_tenant, "mia@example.test", "manager")
    recipient = f"ada-{uuid.uuid4().hex[:8]}@browser.example"

    log_in(page, user.email)
    page.wait_for_url("**/")
    page.screenshot(path=str(SCREENSHOTS / "portal-dashboard-charts.png"), full_page=True)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Send").click()
    page.wait_for_url("**/send/")
    page.get_by_label("Search brands and gifts").fill("Lumen")
    page.get_by_label("Currency").select_option("USD")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/send/?*")
    page.screenshot(path=str(SCREENSHOTS / "portal-send-catalogue.png"), full_page=True)

    page.goto(f"/send/{shop.coffee_usd.id}/")
    page.get_by_label("Amount (USD)").select_option("25.00")
    page.get_by_label("Recipients").fill(f"Ada Lovelace, {recipient}")
    page.get_by_label("Message").fill("Thanks for shipping the release!")
    page.get_by_label("Sender name").fill("The Platform Team")
    page.get_by_role("button", name="Preview email and cost").click()
    page.get_by_test_id("cost-preview").wait_for()
    assert page.get_by_test_id("cost-total").inner_text() == "25.00 USD"
    email = page.frame_locator("[data-testid=email-preview]")
    assert "Thanks for shipping the release!" in email.locator("body").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "portal-send-preview.png"), full_page=True)

    page.get_by_role("button", name="Confirm and send 25.00 USD").click()
    page.wait_for_url("**/send/orders/**")
    deadline = time.time() + 90  # the session's workers may still be busy with an earlier test's bulk batch
    while page.get_by_test_id("reward-status").inner_text() != "Delivered":
        assert time.time() < deadline, "the reward was not delivered within 90 s"
        time.sleep(0.5)
        page.reload()
    page.screenshot(path=str(SCREENSHOTS / "portal-send-delivered.png"), full_page=True)
    assert [m for m in smtp_server.messages if m["to"] == [recipient]], "no email reached the recipient"

    page.goto("/")  # the dashboard now charts the spend and the delivered reward
    assert "No program: 25.00 USD" in page.locator("#spend-usd-desc").text_content()
    assert page.get_by_test_id("delivery-rate").inner_text() == "100.0 %"
    page.screenshot(path=str(SCREENSHOTS / "portal-dashboard-after-send.png"), full_page=True)


def test_send_page_fits_a_phone_and_viewers_are_refused(browser_page, committed_tenant):
    page = browser_page
    shop = make_shop()
    manager = make_staff(committed_tenant, "max@example.test", "manager")
    viewer = make_staff(committed_tenant, "vic@example.test", "viewer")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, manager.email)
    page.wait_for_url("**/")
    page.screenshot(path=str(SCREENSHOTS / "portal-dashboard-phone.png"), full_page=True)
    page.goto(f"/send/{shop.books_gbp.id}/")
    amount = page.get_by_label("Amount (GBP)")
    assert amount.get_attribute("inputmode") == "decimal"  # typed as people type it ("1,000"); the range is said
    assert page.get_by_text("Any amount from 5.00 to 500.00 GBP.").is_visible()
    page.get_by_role("button", name="Preview email and cost").click()  # empty form: errors next to fields
    assert "This field is required." in page.locator("#id_recipients_error").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SCREENSHOTS / "portal-send-phone-errors.png"), full_page=True)
    page.get_by_role("button", name=manager.email).click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")

    log_in(page, viewer.email)
    page.wait_for_url("**/")
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Send").count() == 0
    response = page.goto("/send/")
    assert response.status == 403
    page.screenshot(path=str(SCREENSHOTS / "portal-send-viewer-403.png"), full_page=True)


def test_the_preview_warns_of_approval_before_money_moves_on_a_phone(browser_page, committed_tenant):
    from tenants.policies import approval_policy_set

    page = browser_page
    shop = make_shop()
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="500.00")
    approval_policy_set(tenant=committed_tenant, policy={"thresholds": {"USD": "20.00"}}, actor=None)
    manager = make_staff(committed_tenant, "amy@example.test", "manager")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, manager.email)
    page.wait_for_url("**/")
    page.goto(f"/send/{shop.coffee_usd.id}/")
    page.get_by_label("Amount (USD)").select_option("25.00")
    page.get_by_label("Recipients").fill("Ada Lovelace, ada@approval.example")
    page.get_by_role("button", name="Preview email and cost").click()
    note = page.get_by_test_id("approval-note")
    note.wait_for()
    assert "second person's approval" in note.inner_text()
    button = page.get_by_test_id("confirm-send")
    assert button.inner_text() == "Hold 25.00 USD and ask for approval"
    box = button.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390  # on screen, not off to the side
    page.screenshot(path=str(SCREENSHOTS / "portal-send-needs-approval-phone.png"), full_page=True)
