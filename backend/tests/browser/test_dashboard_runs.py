"""The dashboard's "Started" column says when a run was started, and that a never-started run was not
(never its creation time), through the real Nginx in front of the real platform."""

from __future__ import annotations


from playwright.sync_api import expect
from test_flows import login


def test_a_never_started_run_is_not_shown_as_started(page, site):
    site.wait_market_catalog()
    email, password = site.create_user()
    api = site.login_api(email, password)
    body = {"strategy": "sma_cross", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h",
            "mode": "paper", "stake": 1000}
    idle = api.post("/runs", json=body).json()
    started = api.post("/runs", json=body).json()
    run = api.post(f"/runs/{started['id']}/start").json()
    assert run["started_at"] is not None and idle["started_at"] is None

    login(page, email, password)
    page.locator("body[data-ready]").wait_for()
    idle_cell = page.locator(f'#runs tbody tr[data-run="{idle["id"]}"] td').last
    expect(idle_cell).to_have_text("not started")
    assert idle_cell.locator("time").count() == 0
    started_time = page.locator(f'#runs tbody tr[data-run="{started["id"]}"] td').last.locator("time")
    expect(started_time).to_have_count(1)
    shown = started_time.get_attribute("datetime")
    assert shown[:19] == run["started_at"][:19], (shown, run["started_at"])
