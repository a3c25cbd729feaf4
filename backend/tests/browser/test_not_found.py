"""Unknown pages and unknown run ids get a proper not-found page (the site's own, with a way back), not
Nginx's default page or a run page of empty panels, through the real Nginx in front of the real platform."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import expect


def login(page: Any, email: str, password: str) -> None:
    page.goto("/login.html")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(\?.*)?$"))
    page.locator("header.topbar .email").wait_for()


def _expected_404s(browser_errors: list[str], count: int) -> None:
    """Take the ``count`` console errors of the 404 responses this test asked for out of the list the
    ``page`` fixture fails on; anything else stays."""
    missing = [e for e in browser_errors if "status of 404" in e]
    assert len(missing) == count, browser_errors
    for e in missing:
        browser_errors.remove(e)


def test_an_unknown_page_is_the_sites_not_found_page(page, site, browser_errors):
    response = page.goto("/no-such-page")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    assert page.title() == "Page not found · Tradefleet"
    page.get_by_role("link", name="Go to the dashboard").wait_for()
    assert "nginx" not in page.content().lower()
    _expected_404s(browser_errors, 1)


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
    # The API's own answers to the two look-ups (404 and 422) are in the console; nothing else.
    assert len([e for e in browser_errors if "status of 422" in e]) == 1, browser_errors
    browser_errors[:] = [e for e in browser_errors if "status of 422" not in e]
    _expected_404s(browser_errors, 1)
