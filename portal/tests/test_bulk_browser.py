"""Bulk CSV in real headless Chromium with the real worker pool: upload 1,000 rows with 3 bad ones, preview,
confirm with the keyboard, watch the progress bar reach 100 %, download the results. Screenshots in ./var/."""

import csv
import re
import uuid

import pytest
from django_tenants.utils import tenant_context

from batches.selectors import RESULT_HEADER
from funds.services import funds_deposit
from testsupport.batches import csv_bytes, digital_rows
from testsupport.browser import SCREENSHOTS
from testsupport.catalog import make_shop
from testsupport.portal import PASSWORD, make_staff

pytestmark = pytest.mark.worker


def log_in(page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def test_thousand_rows_preview_confirm_progress_and_results(
    browser_page, committed_tenant, celery_worker_process, tmp_path
):
    page = browser_page
    shop = make_shop()  # its products are issued by the sandbox supplier: fulfilment is instant
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="20000.00")
    rows = digital_rows(shop.coffee_usd, 1000, amount="10", domain="bulk.example")
    rows[9]["recipient_email"] = "not-an-email"  # spreadsheet row 11
    rows[499]["amount"] = "30"  # not a denomination of 10/25/50: row 501
    rows[997]["recipient_name"] = '=HYPERLINK("http://evil.example","click")'  # row 999
    path = tmp_path / "december.csv"
    path.write_bytes(csv_bytes(rows))

    manager = make_staff(committed_tenant, "pm@example.test", "manager")
    log_in(page, manager.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Bulk").click()
    page.wait_for_url("**/bulk/")
    assert page.get_by_test_id("bulk-template").get_attribute("href") == "/bulk/template.csv"
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_label("Batch name").fill("December thank-yous")
    page.get_by_role("button", name="Upload and preview").click()
    page.wait_for_url(re.compile(r".*/bulk/[0-9a-f-]{36}/$"))

    assert page.get_by_test_id("rows").inner_text() == "1000"
    assert page.get_by_test_id("valid-rows").inner_text() == "997"
    assert page.get_by_test_id("error-rows").inner_text() == "3"
    errors = page.get_by_test_id("row-errors").locator("tbody tr")
    assert errors.count() == 3
    cells = [errors.nth(i).locator("td").all_inner_texts() for i in range(3)]
    assert [(c[0], c[1]) for c in cells] == [("11", "recipient_email"), ("501", "amount"), ("999", "recipient_name")]
    assert "formula" in cells[2][2]
    assert page.get_by_test_id("cost-USD").inner_text() == "9,970.00 USD"
    assert page.get_by_test_id("available-USD").inner_text() == "20,000.00 USD"
    page.screenshot(path=str(SCREENSHOTS / "portal-bulk-preview.png"), full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())  # "Send 997 rewards? The funds are held now."
    page.get_by_test_id("confirm").focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("progress").wait_for()
    seen = {page.get_by_test_id("progress").get_attribute("aria-valuenow")}
    page.get_by_test_id("results-csv").wait_for(timeout=60_000)  # the page reloads itself once finished
    seen.add(page.get_by_test_id("progress").get_attribute("aria-valuenow"))
    assert "100" in seen
    assert "997 of 997 rows handled" in page.locator(".progress-text").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "portal-bulk-completed.png"), full_page=True)

    with page.expect_download() as info:
        page.get_by_test_id("results-csv").click()
    results = list(csv.reader(info.value.path().open(encoding="utf-8")))
    assert results[0] == RESULT_HEADER  # each row's recipient, external id, reward and reference, status
    assert len(results) == 998
    assert all(uuid.UUID(row[4]) and row[5].startswith("RW-") for row in results[1:])
    assert {row[0] for row in results[1:]}.isdisjoint({"11", "501", "999"})

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    page.screenshot(path=str(SCREENSHOTS / "portal-bulk-completed-phone.png"), full_page=True)
    page.goto("/bulk/")
    assert "December thank-yous" in page.get_by_test_id("bulk-batches").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "portal-bulk-list-phone.png"), full_page=True)

    page.set_viewport_size({"width": 1280, "height": 800})
    page.context.clear_cookies()
    viewer = make_staff(committed_tenant, "look@example.test", "viewer")
    log_in(page, viewer.email)
    assert page.get_by_role("link", name="Bulk").count() == 0
    response = page.goto("/bulk/")
    assert response.status == 403
    assert page.get_by_test_id("forbidden").is_visible()
