"""What a trader and an admin do in the browser, through the real Nginx in front of the real platform.

Flows: sign up and land on the dashboard; keyboard-only login; an API validation message shown next to the
strategy parameter it names; a backtest run from the form to its chart, metrics and trades (progress by
SSE); a paper run started from the catalog whose trades appear live on its page, then stopped; an admin
disabling a user, who then cannot sign in. ``test_every_page`` opens every page at 375 px and 1440 px
(the strategy uploads and review pages with an upload of the admin's), saves a screenshot of each
(``test-artifacts/screenshots/<page>-<width>.png``), runs axe-core on each and checks nothing scrolls
sideways. The ``page`` fixture fails a test on any console error.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import pytest

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN

BTC_1H = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"


def expect_failed_load(errors: list[str], status: int) -> None:
    """Remove the one console error Chromium logs for a request the test provoked on purpose (it logs
    every 4xx reply as "Failed to load resource"); fails if it is not there."""
    wanted = f"status of {status}"
    found = next((e for e in errors if "Failed to load resource" in e and wanted in e), None)
    assert found is not None, f"expected a failed load with {wanted} in {errors}"
    errors.remove(found)


def login(page: Any, email: str, password: str) -> None:
    page.goto("/login.html")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(\?.*)?$"))
    page.locator("header.topbar .email").wait_for()


@pytest.fixture(scope="module")
def stored_candles(site) -> None:
    """BTC/USDT 1h of 2024 in the candle store (as `make run` stores them), for backtests."""
    done = subprocess.run([str(BIN / "tradefleet"), "data", "import", str(BTC_1H)], env=site.stack.full_env(),
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_sign_up_lands_on_the_dashboard(page, site, screenshot):
    email = f"new-{time.time_ns()}@example.com"
    page.goto("/signup.html")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password", exact=True).fill("a-long-password-1")
    page.get_by_label("Repeat the password").fill("a-long-password-1")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/\?welcome=1$"))
    page.locator("#banner", has_text=f"Welcome, {email}").wait_for()
    assert page.locator("header.topbar .email").inner_text() == email
    page.get_by_text("No runs yet.").wait_for()
    screenshot(page, "flow-signup-dashboard")

    # Signing out forgets the session: the dashboard sends the browser to the login page.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login\.html"))
    page.goto("/")
    page.wait_for_url(re.compile(r"/login\.html\?next=%2F"))


def test_sign_up_mismatch_is_shown_next_to_the_field(page):
    page.goto("/signup.html")
    page.get_by_label("E-mail").fill("x@example.com")
    page.get_by_label("Password", exact=True).fill("a-long-password-1")
    page.get_by_label("Repeat the password").fill("another-password-2")
    page.get_by_role("button", name="Create account").click()
    repeat = page.get_by_label("Repeat the password")
    assert repeat.get_attribute("aria-invalid") == "true"
    error_id = repeat.get_attribute("aria-describedby").split()[-1]
    assert page.locator(f"#{error_id}").inner_text() == "The passwords do not match."


def test_keyboard_only_login(page, site):
    email, password = site.create_user()
    page.goto("/login.html")
    for _ in range(10):  # Tab from the top of the page to the e-mail field
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "email":
            break
    else:
        pytest.fail("the e-mail field is not reachable with Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused field shows no focus outline"
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/$"))
    assert page.locator("header.topbar .email").inner_text() == email


def test_wrong_password_is_reported_on_the_form(page, site, browser_errors):
    email, _ = site.create_user()
    page.goto("/login.html")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    status = page.locator("#login-form .form-status")
    status.wait_for()
    assert "Incorrect e-mail or password" in status.inner_text()
    assert page.url.endswith("/login.html")
    expect_failed_load(browser_errors, 401)


def test_api_validation_message_next_to_the_parameter(page, site, browser_errors):
    site.wait_market_catalog()
    email, password = site.create_user()
    login(page, email, password)
    page.goto("/strategies.html#sma_cross")
    card = page.locator("#strategy-sma_cross")
    fast = card.get_by_label("Fast")
    fast.fill("5000")  # the schema's maximum is 200: the API names params.fast
    card.get_by_role("button", name="Start paper run").click()
    message = card.locator(".field-error")
    message.wait_for()
    assert fast.get_attribute("aria-invalid") == "true"
    assert message.evaluate("(n) => n.parentElement.contains(document.querySelector('#s-sma_cross-p-fast'))")
    assert "200" in message.inner_text()
    expect_failed_load(browser_errors, 422)


def test_backtest_from_the_form_to_its_chart(page, site, stored_candles, screenshot):
    site.wait_market_catalog()  # the form's symbols and timeframes come from it
    email, password = site.create_user()
    login(page, email, password)
    page.goto("/backtests.html")
    page.get_by_label("Strategy", exact=True).select_option("sma_cross")
    page.get_by_label("Fast").fill("8")
    page.get_by_label("Slow").fill("30")
    page.get_by_label("Symbol").fill("BTC/USDT")  # the stored candles' symbol
    page.get_by_label("Timeframe").select_option("1h")
    page.get_by_label("From (UTC)").fill("2024-01-01")
    page.get_by_label("To (UTC, exclusive)").fill("2024-04-01")
    page.get_by_role("button", name="Run backtest").click()

    page.locator("#bt-done").wait_for(state="visible", timeout=90_000)
    assert re.search(r"\?id=[0-9a-f-]{36}$", page.url)
    tiles = page.locator("#bt-metrics").text_content()
    assert "Total return" in tiles and "Max drawdown" in tiles and "USDT" in tiles
    rows = page.locator("#bt-trades tbody tr")
    assert rows.count() >= 3, "sma_cross 8/30 on three months of 1h candles trades several times"
    assert "USDT" in rows.first.inner_text()
    assert page.locator("#bt-equity canvas").count() >= 1
    assert page.locator("#bt-candles canvas").count() >= 1
    # The list on the right has it too, done, with its return.
    page.locator("#bt-list tbody tr").first.filter(has_text="done").wait_for()
    screenshot(page, "flow-backtest-result")


def test_paper_run_trades_appear_live_then_stop(page, site, screenshot):
    site.wait_market_catalog()
    email, password = site.create_user()
    login(page, email, password)
    page.goto("/strategies.html#sma_cross")
    card = page.locator("#strategy-sma_cross")
    card.get_by_label("Fast").fill("2")
    card.get_by_label("Slow").fill("5")
    card.get_by_label("Timeframe").select_option("1m")
    card.get_by_label("Symbol").fill("BTC/USDT")
    card.get_by_role("button", name="Start paper run").click()
    page.wait_for_url(re.compile(r"/run\.html\?id="))
    page.locator("#live.live").wait_for(timeout=30_000)  # the event stream is open
    assert page.locator("#run-status").inner_text() == "running"

    # Without reloading: orders and a closed trade arrive through the stream (120x simulator: a 1m
    # candle every 0.5 s; SMA 2/5 crosses within a few dozen candles).
    url = page.url
    closed = page.locator("#trades tbody tr:has(td.num:has-text('USDT')):not(:has(.badge))")  # no "open" badge
    closed.first.wait_for(timeout=90_000)
    assert re.search(r"[▲▼]", closed.first.inner_text()), "a closed trade shows its PnL with a direction"
    page.locator("#orders tbody tr:has-text('filled')").first.wait_for()
    assert page.url == url
    assert page.locator("#events li").count() >= 2
    screenshot(page, "flow-paper-run-live")

    page.get_by_role("button", name="Stop").click()
    page.get_by_role("dialog").get_by_role("button", name="Stop the run").click()
    page.locator("#run-status:has-text('stopped')").wait_for()
    assert page.locator("#btn-stop").is_hidden()


def test_admin_disables_a_user_who_then_cannot_sign_in(page, new_page, site, browser_errors, screenshot):
    admin_email, admin_password = site.create_user(role="admin")
    email, password = site.create_user()
    login(page, admin_email, admin_password)
    page.goto("/admin/")
    page.get_by_label("E-mail contains").fill(email)
    page.get_by_role("button", name="Search").click()
    row = page.locator(f"#users tbody tr[data-email='{email}']")
    row.get_by_role("button", name=f"Disable {email}").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable the account").click()
    row.get_by_text("disabled").wait_for()
    screenshot(page, "flow-admin-disabled-user")

    trader = new_page()
    trader.goto("/login.html")
    trader.get_by_label("E-mail").fill(email)
    trader.get_by_label("Password").fill(password)
    trader.get_by_role("button", name="Sign in").click()
    status = trader.locator("#login-form .form-status")
    status.wait_for()
    assert "disabled" in status.inner_text()
    assert trader.url.endswith("/login.html")
    expect_failed_load(browser_errors, 403)


# --- every page, both widths -----------------------------------------------------------------------

def _wait_backtest(client, backtest_id: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get(f"/backtests/{backtest_id}").json()["status"]
        if status in ("done", "failed"):
            assert status == "done"
            return
        time.sleep(0.5)
    raise AssertionError("the backtest did not finish")


STRICT_AXE = {"author", "admin-strategy-versions"}
"""Pages held to no axe-core violation at all (minor and moderate included), not only no serious one."""


def test_every_page(page, site, stored_candles, screenshot, viewport, axe):
    site.wait_market_catalog()
    email, password = site.create_user(role="admin")
    api = site.login_api(email, password)
    run = api.post("/runs", json={"strategy": "sma_cross", "params": {"fast": 3, "slow": 8}, "exchange": "binance",
                                  "symbol": "BTC/USDT", "timeframe": "1m", "mode": "paper", "stake": 10_000}).json()
    assert api.post(f"/runs/{run['id']}/start").status_code == 200
    bt = api.post("/backtests", json={"strategy": "sma_cross", "params": {"fast": 8, "slow": 30}, "exchange": "binance",
                                      "symbol": "BTC/USDT", "timeframe": "1h", "start": "2024-01-01T00:00:00Z",
                                      "end": "2024-03-01T00:00:00Z", "stake": 10_000}).json()
    _wait_backtest(api, bt["id"])
    # An upload of the admin's own (admins may upload) for the uploads and review pages.
    upload = (REPO_ROOT / "backend" / "tests" / "browser" / "strategies" / "author_sma.py").read_text()
    upload = upload.replace('name = "author_sma"', f'name = "pages_sma_{time.time_ns() % 10**8}"')
    version = api.post("/strategies/uploads", files={"file": ("pages_sma.py", upload.encode(), "text/x-python")})
    assert version.status_code == 202, version.text
    version_id = version.json()["id"]
    deadline = time.monotonic() + 150
    while api.get(f"/strategies/uploads/{version_id}").json()["status"] == "validating":
        assert time.monotonic() < deadline, "the upload was not validated"
        time.sleep(0.5)

    public = [("login", "/login.html"), ("signup", "/signup.html"), ("reset-request", "/reset.html"),
              ("reset-confirm", "/reset.html?token=not-a-real-token"), ("verify-no-token", "/verify.html")]
    for name, path in public:
        for width, size in (("mobile", viewport.mobile), ("desktop", viewport.desktop)):
            size(page)
            page.goto(path)
            page.locator("main h1:visible").first.wait_for()
            screenshot(page, f"{name}-{width}")
            try:
                viewport.assert_fits(page)
            except AssertionError as exc:
                raise AssertionError(f"{name} at {width}: {exc}") from None
            axe(page)

    login(page, email, password)
    pages = [
        ("dashboard", "/", "#live.live"),
        ("strategies", "/strategies.html#sma_cross", "#strategy-sma_cross details[open]"),
        ("backtests", f"/backtests.html?id={bt['id']}", "#live.live"),
        ("run", f"/run.html?id={run['id']}", "#live.live"),
        ("keys", "/keys.html", "#keys tbody tr"),
        ("account", "/account.html", "#profile dd"),
        ("author", "/author.html", "#versions li[data-status='pending_review'] .report"),
        ("admin-users", "/admin/", "#users tbody tr"),
        ("admin-runs", "/admin/runs.html", "#runs tbody tr"),
        ("admin-strategies", "/admin/strategies.html", "#loaded tbody tr"),
        ("admin-strategy-versions", f"/admin/strategy-versions.html?id={version_id}", "#review ol.source li"),
        ("admin-system", "/admin/system.html", "#health dl"),
        ("admin-audit", "/admin/audit.html", "#audit tbody tr"),
    ]
    for name, path, ready in pages:
        for width, size in (("mobile", viewport.mobile), ("desktop", viewport.desktop)):
            size(page)
            page.goto(path)
            page.locator("body[data-ready]").wait_for()
            page.locator(ready).first.wait_for()
            errors = page.locator(".page-status.error:visible")
            assert errors.count() == 0, errors.first.inner_text()
            screenshot(page, f"{name}-{width}")
            try:
                viewport.assert_fits(page)
            except AssertionError as exc:
                raise AssertionError(f"{name} at {width}: {exc}") from None
            violations = axe(page)
            if name in STRICT_AXE:
                assert not violations, f"{name} at {width}: axe-core: {[(v['id'], v['impact']) for v in violations]}"
    # The 375 px menu opens from the keyboard.
    viewport.mobile(page)
    page.goto("/")
    toggle = page.get_by_role("button", name="Menu")
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true"
    page.get_by_role("link", name="Strategies").first.wait_for()
    screenshot(page, "dashboard-mobile-menu")


def test_admin_disables_a_strategy_for_traders(page, site):
    email, password = site.create_user(role="admin")
    api = site.login_api(email, password)
    login(page, email, password)
    try:
        page.goto("/admin/strategies.html")
        row = page.locator("#loaded tbody tr", has_text="rsi_reversion")
        row.get_by_role("button", name="Disable rsi_reversion").click()
        row.get_by_text("disabled", exact=True).wait_for()
        # Traders' catalog no longer lists it.
        page.goto("/strategies.html")
        page.locator("body[data-ready]").wait_for()
        assert page.locator("#strategy-rsi_reversion").count() == 0
        assert page.locator("#strategy-sma_cross").count() == 1
        page.goto("/admin/strategies.html")
        page.locator("#loaded tbody tr", has_text="rsi_reversion").get_by_role("button", name="Enable rsi_reversion").click()
        page.locator("#loaded tbody tr", has_text="rsi_reversion").get_by_text("enabled", exact=True).wait_for()
    finally:
        api.patch("/admin/strategies/rsi_reversion", json={"enabled": True})
