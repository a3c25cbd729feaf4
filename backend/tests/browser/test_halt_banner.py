"""While an admin halts live trading, every signed-in page shows a banner with the admin's reason; once
it is lifted the banner is gone, through the real Nginx in front of the real platform."""

from __future__ import annotations

import secrets

from playwright.sync_api import expect
from test_flows import login


def test_traders_see_the_halt_and_its_reason_on_every_page(page, site):
    site.wait_market_catalog()
    trader, trader_password = site.create_user()
    admin, admin_password = site.create_user(role="admin")
    admin_api = site.login_api(admin, admin_password)
    trader_api = site.login_api(trader, trader_password)
    run = trader_api.post("/runs", json={"strategy": "sma_cross", "exchange": "binance", "symbol": "BTC/USDT",
                                         "timeframe": "1h", "mode": "paper", "stake": 1000}).json()
    reason = f"exchange incident {secrets.token_hex(2)}"
    login(page, trader, trader_password)
    banner = page.locator(".halt-banner")
    assert banner.count() == 0  # not halted: no banner

    assert admin_api.put("/admin/halt", json={"halted": True, "reason": reason}).status_code == 200
    try:
        for path in ("/", "/strategies.html", "/backtests.html", "/keys.html", "/account.html",
                     f"/run.html?id={run['id']}"):
            page.goto(path)
            page.locator("body[data-ready]").wait_for()
            expect(banner).to_have_count(1)
            expect(banner).to_contain_text("Live trading is halted by an admin")
            expect(banner).to_contain_text(reason)
            expect(banner.locator("time")).to_have_count(1)
    finally:
        assert admin_api.put("/admin/halt", json={"halted": False}).status_code == 200
    page.goto("/")
    page.locator("body[data-ready]").wait_for()
    expect(banner).to_have_count(0)
