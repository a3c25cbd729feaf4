"""The keys page shows a key's fingerprint whole, as the API gives it (the first and last four characters
that the exchange's own key list shows), through the real Nginx in front of the real platform."""

from __future__ import annotations

import secrets

from playwright.sync_api import expect
from test_flows import login


def test_the_fingerprint_is_shown_whole(page, site):
    email, password = site.create_user()
    api = site.login_api(email, password)
    api_key = "demo" + secrets.token_hex(28) + "5431"
    created = api.post("/exchange-accounts", json={"exchange": "binance", "label": "fingerprint",
                                                   "api_key": api_key, "secret": secrets.token_hex(32)})
    assert created.status_code == 201, created.text
    assert created.json()["fingerprint"] == "demo…5431"

    login(page, email, password)
    page.goto("/keys.html")
    page.locator("body[data-ready]").wait_for()
    row = page.locator("#keys tbody tr").filter(has_text="fingerprint")
    expect(row.locator("span.mono")).to_have_text("demo…5431")
    assert api_key not in page.content()
