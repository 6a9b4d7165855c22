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
