"""Unknown pages and unknown run ids get a proper not-found page (the site's own, with a way back), not
Nginx's default page or a run page of empty panels, through the real Nginx in front of the real platform."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect
from test_flows import expect_failed_load, login


def test_an_unknown_page_is_the_sites_not_found_page(page, site, browser_errors):
    response = page.goto("/no-such-page")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    assert page.title() == "Page not found · Tradefleet"
    page.get_by_role("link", name="Go to the dashboard").wait_for()
    assert "nginx" not in page.content().lower()
    expect_failed_load(browser_errors, 404)


def test_an_unknown_or_malformed_run_id_is_run_not_found(page, site, browser_errors):
    email, password = site.create_user()
    login(page, email, password)
    for run_id in (str(uuid.uuid4()), "not-a-run-id"):
        page.goto(f"/run.html?id={run_id}")
        page.locator("body[data-ready]").wait_for()
        expect(page.get_by_role("heading", name="Run not found")).to_be_visible()
        assert page.locator("#run-candles").count() == 0  # no empty panels left behind
        assert page.locator(".page-status.error").count() == 0
        page.get_by_role("link", name="Go to the dashboard").wait_for()
    # The API's own answers to the two look-ups (404 and 422) are in the console; nothing else (the page
    # fixture fails on any other error).
    expect_failed_load(browser_errors, 404)
    expect_failed_load(browser_errors, 422)
