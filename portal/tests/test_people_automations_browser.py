"""People and Automations in real headless Chromium at 1366 and 390 px, with the real worker: import a small CSV
with its preview, open a person, create a Birthday automation from the template and see it in the person's
upcoming list. Screenshots in ./var/screenshots/."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from testsupport.batches import csv_bytes
from testsupport.browser import SCREENSHOTS
from testsupport.catalog import make_shop
from testsupport.portal import PASSWORD, make_staff

pytestmark = pytest.mark.worker
WIDTHS = (1366, 390)


def log_in(page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def shot(page, name: str) -> None:
    """A full-page screenshot at each width, checking the page never scrolls sideways."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
        page.screenshot(path=str(SCREENSHOTS / f"portal-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def test_import_people_then_a_birthday_automation_shows_on_their_page(
    browser_page, committed_tenant, celery_worker_process, tmp_path
):
    page = browser_page
    shop = make_shop()
    birthday = (datetime.now(UTC).date() + timedelta(days=3)).strftime("%m-%d")  # within the next 30 days
    rows = [
        {"external_id": "emp-1", "name": "Siti Aminah", "email": "siti@example.com", "timezone": "Asia/Kuala_Lumpur",
         "birthday": birthday, "department": "Engineering"},
        {"external_id": "emp-2", "name": "Jonas Weber", "email": "jonas@example.com", "timezone": "Europe/Berlin"},
        {"external_id": "emp-3", "name": "Nobody", "timezone": "Mars/Olympus"},
    ]  # fmt: skip
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes(rows, columns=["external_id", "name", "email", "timezone", "birthday", "department"]))
    log_in(page, make_staff(committed_tenant, "hr@example.test", "admin").email)

    page.goto("/people/import/")
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_test_id("import-upload").click()
    page.wait_for_url(re.compile(r".*/people/import/[0-9a-f-]{36}/$"))
    assert page.get_by_test_id("creates").inner_text() == "2"
    assert page.get_by_test_id("error-rows").inner_text() == "1"
    assert "timezone" in page.get_by_test_id("row-errors").inner_text()
    shot(page, "people-import-preview")
    page.get_by_test_id("import-confirm").click()
    page.get_by_role("link", name="See the people").click(timeout=60_000)  # the page reloads itself once done
    page.wait_for_url("**/people/")
    assert page.get_by_test_id("people-table").locator("tbody tr").count() == 2
    shot(page, "people-list")
    page.get_by_role("link", name="Siti Aminah").click()
    person_url = page.url
    assert "Nothing planned" in page.get_by_test_id("person-upcoming").inner_text()

    page.goto("/automations/")
    page.get_by_test_id("template-birthday").click()
    page.get_by_label("Gift").select_option(str(shop.coffee_usd.id))
    page.get_by_label("Amount").fill("25.00")
    shot(page, "automation-new-birthday")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/automations/[0-9a-f-]{36}/$"))
    upcoming = page.locator("main").inner_text()
    assert "Siti Aminah" in upcoming and re.search(r"\d{4}-\d\d-\d\d 01:00", upcoming)  # 09:00 in Kuala Lumpur
    shot(page, "automation-birthday")

    page.goto(person_url)
    upcoming = page.get_by_test_id("person-upcoming").inner_text()
    assert "Birthday" in upcoming and "25.00 USD" in upcoming
    shot(page, "person")
