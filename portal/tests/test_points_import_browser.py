"""Points from a CSV in real headless Chromium at 1366 and 390 px: upload a file with bad rows, read the preview
(awards, points, the money held, each error), confirm, and see the awards. Screenshots in ./var/screenshots/."""

import re

import pytest
from django_tenants.utils import tenant_context

from funds.services import funds_deposit
from points.models import PointsAward
from points.tests.conftest import KUDOS, books_violations, make_person
from programs.services import program_create
from testsupport.portal import make_staff

from .test_people_automations_browser import log_in, shot

pytestmark = pytest.mark.worker


def test_a_points_file_is_previewed_with_its_errors_and_awarded(
    browser_page, committed_tenant, celery_worker_process, tmp_path
):
    page = browser_page
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
        program_create(slug="kudos", name="Kudos", points=KUDOS)
    for number, name in ((1, "Siti Aminah"), (2, "Jonas Weber")):
        make_person(committed_tenant, f"E-{number}", name=name)
    path = tmp_path / "kudos-q4.csv"
    path.write_text("person_external_id,points,reason,external_id\nE-1,1500,Launch <b>hero</b>,q4-1\n"
                    "E-2,250,,q4-2\nE-404,10,,\nE-1,1.5,,\n", encoding="utf-8")  # fmt: skip
    log_in(page, make_staff(committed_tenant, "hr@example.test", "manager").email)

    page.goto("/points/")
    page.get_by_test_id("points-import-link").click()
    page.get_by_label("CSV file (or XLSX)").set_input_files(str(path))
    page.get_by_test_id("points-import-upload").click()
    page.wait_for_url(re.compile(r".*/points/import/[0-9a-f-]{36}/$"))
    assert page.get_by_test_id("valid-rows").inner_text() == "2"
    assert page.get_by_test_id("points-total").inner_text() == "1750"
    assert page.get_by_test_id("points-value").inner_text() == "17.50 USD"
    errors = page.get_by_test_id("row-errors").inner_text()
    assert "No active person has this id." in errors and "A whole number of points" in errors
    shot(page, "points-import-preview")
    page.get_by_test_id("points-import-confirm").click()
    page.get_by_role("link", name="See the awards").click(timeout=60_000)  # the page reloads itself once done
    page.wait_for_url("**/points/")
    assert "Launch <b>hero</b>" in page.get_by_test_id("points-awards").inner_text()  # text, not markup
    shot(page, "points-after-import")
    with tenant_context(committed_tenant):
        assert sorted(PointsAward.objects.values_list("points", flat=True)) == [250, 1500]
    assert books_violations(committed_tenant) == []
