"""Strategy uploads in the browser, through the real Nginx in front of the real platform.

The whole path of an uploaded strategy: an author sets a display name, uploads ``strategies/author_sma.py``
(this folder) on the uploads page and watches it validate in the sandbox to ``pending review`` with its
report; an admin reads its source (line-numbered, markup shown as text) and approves it on the review
page; a trader finds it in the catalog under the author's name and version, backtests it (trades) and
starts a paper run whose trades arrive live; with a version 2 approved, the run keeps version 1 while it
runs and, once stopped, is moved to version 2 from its page. Also: a rejection's reason reaches the author (the reject
form's required reason and the API's field error shown next to the field, the drop zone used for the
file), and a trader gets neither the uploads page nor the API behind it. Screenshots and axe-core of the
new pages at both widths are in ``test_flows.test_every_page``.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

from test_flows import expect_failed_load, login, stored_candles  # noqa: F401 - stored_candles is a fixture

AUTHOR_SMA = Path(__file__).parent / "strategies" / "author_sma.py"
VALIDATION_TIMEOUT_MS = 150_000


def strategy_file(folder: Path, name: str) -> Path:
    """``author_sma.py`` as strategy ``name`` (catalog names are claimed by their first author), saved as
    ``<folder>/<name>.py``."""
    text = AUTHOR_SMA.read_text()
    assert 'name = "author_sma"' in text
    path = folder / f"{name}.py"
    path.write_text(text.replace('name = "author_sma"', f'name = "{name}"'))
    return path


def shot(screenshot: Any, page: Any, name: str) -> None:
    """A full-page screenshot from the top (a scrolled page would draw its sticky header mid-image)."""
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, name)


def upload_in_browser(page: Any, path: Path) -> Any:
    """Upload ``path`` with the file input on the uploads page; returns its card once validated."""
    page.goto("/author.html")
    page.locator("body[data-ready]").wait_for()
    page.get_by_label("Strategy file (.py)").set_input_files(str(path))
    page.locator("#upload-chosen", has_text=path.name).wait_for()
    page.get_by_role("button", name="Upload and validate").click()
    page.locator("#upload-form .form-status.ok", has_text=f"Uploaded {path.name}").wait_for()
    card = page.locator("#versions > li", has=page.locator(".kv dd", has_text=path.name)).first
    card.wait_for()
    return card


def wait_validated(card: Any) -> str:
    """Until the card leaves ``validating`` (pushed by the live stream, or polled); returns its status."""
    card.locator(":scope:not([data-status='validating'])").wait_for(timeout=VALIDATION_TIMEOUT_MS)
    return card.get_attribute("data-status")


def test_author_uploads_admin_approves_trader_backtests_and_runs(page, new_page, site, stored_candles,
                                                                 screenshot):
    site.wait_market_catalog()
    author_email, author_password = site.create_user(role="author")
    admin_email, admin_password = site.create_user(role="admin")
    trader_email, trader_password = site.create_user()
    display_name = f"Ada Author {secrets.token_hex(2)}"
    source_lines = AUTHOR_SMA.read_text().rstrip("\n").split("\n")

    # --- the author: a display name, then the upload -------------------------------------------------
    login(page, author_email, author_password)
    page.goto("/account.html")
    page.get_by_label("Display name").fill(display_name)
    page.get_by_role("button", name="Save the name").click()
    page.locator("#name-form .form-status.ok", has_text=display_name).wait_for()
    page.locator("#profile dd", has_text=display_name).wait_for()

    page.get_by_role("link", name="Uploads").click()
    page.wait_for_url(re.compile(r"/author\.html$"))
    card = upload_in_browser(page, AUTHOR_SMA)
    # Just after the upload it is validating (or already done, on a fast machine).
    assert card.get_attribute("data-status") in ("validating", "pending_review")
    assert wait_validated(card) == "pending_review"
    card.get_by_role("heading", name="author_sma v1").wait_for()
    assert card.locator(".badge", has_text="pending review").count() == 1
    report = card.locator(".report-details")
    assert report.get_attribute("open") is not None, "a finished validation shows its report"
    steps = report.locator("ol.steps li")
    names = [s.strip() for s in steps.locator(".step-name").all_inner_texts()]
    assert {"loads", "parameters", "backtest", "lookahead"} <= set(names), names
    assert steps.count() == report.locator("ol.steps li.ok").count(), "every step passed"
    assert "passed" in steps.first.inner_text()
    card.get_by_text("View source").click()
    card.locator("ol.source li").first.wait_for()
    assert card.locator("ol.source li").count() == len(source_lines)
    shot(screenshot, page, "flow-upload-pending-review")

    # --- the admin: source and report on the review page, then approve ------------------------------
    admin = new_page()
    login(admin, admin_email, admin_password)
    admin.get_by_role("link", name="Reviews").click()
    admin.wait_for_url(re.compile(r"/admin/strategy-versions\.html$"))
    admin.locator("body[data-ready]").wait_for()
    row = admin.locator("#versions tbody tr", has_text="author_sma.py").filter(has_text=author_email)
    assert row.locator(".badge", has_text="pending review").count() == 1
    row.get_by_role("button", name=re.compile(r"^Review author_sma\.py")).click()
    review = admin.locator("#review")
    review.get_by_role("heading", name="Review: author_sma v1").wait_for()
    lines = review.locator("ol.source li")
    assert lines.count() == len(source_lines)
    for number in (1, 6, len(source_lines)):  # the list's item n is line n of the file, verbatim
        assert lines.nth(number - 1).text_content() == source_lines[number - 1]
    markup = next(i for i, line in enumerate(source_lines) if "<script>" in line)
    assert "<script>" in lines.nth(markup).text_content()
    assert review.locator("ol.source script").count() == 0, "the source is text, never markup"
    assert review.locator("#review-meta", has_text=author_email).count() == 1
    assert review.locator("ol.steps li.ok", has_text="backtest").count() == 1
    shot(screenshot, admin, "flow-review-source")
    review.get_by_role("button", name="Approve").click()
    admin.get_by_role("dialog").get_by_role("button", name="Approve").click()
    review.locator("#review-outcome.ok", has_text="approved").wait_for()
    review.locator("#review-meta .badge", has_text="approved").wait_for()
    assert review.get_by_role("button", name="Approve").count() == 0

    # The author sees the approval on reload.
    page.reload()
    page.locator("#versions > li[data-status='approved']", has_text="author_sma v1").wait_for()

    # --- the trader: the catalog, a backtest, a paper run -------------------------------------------
    trader = new_page()
    login(trader, trader_email, trader_password)
    trader.goto("/strategies.html#author_sma")
    entry = trader.locator("#strategy-author_sma")
    entry.locator(".byline", has_text=display_name).wait_for()
    assert entry.locator(".badge", has_text="v1").count() == 1
    assert entry.locator(".badge", has_text="uploaded").count() == 1
    shot(screenshot, trader, "flow-upload-in-catalog")

    entry.get_by_role("button", name="Backtest these settings").click()
    trader.wait_for_url(re.compile(r"/backtests\.html\?strategy=author_sma"))
    assert "by " + display_name in trader.get_by_label("Strategy", exact=True).locator("option:checked").inner_text()
    trader.get_by_label("Symbol").fill("BTC/USDT")  # the stored candles' symbol
    trader.get_by_label("From (UTC)").fill("2024-01-01")
    trader.get_by_label("To (UTC, exclusive)").fill("2024-04-01")
    trader.get_by_role("button", name="Run backtest").click()
    trader.locator("#bt-done").wait_for(state="visible", timeout=90_000)
    assert "author_sma v1" in trader.locator("#bt-result-title").inner_text()
    assert trader.locator("#bt-trades tbody tr:has(td.num)").count() >= 3, "6/20 SMA on three months of 1h trades"
    shot(screenshot, trader, "flow-upload-backtest")

    trader.goto("/strategies.html#author_sma")
    entry.get_by_label("Fast").fill("2")
    entry.get_by_label("Slow").fill("5")
    entry.get_by_label("Timeframe").select_option("1m")
    entry.get_by_label("Symbol").fill("BTC/USDT")
    entry.get_by_role("button", name="Start paper run").click()
    trader.wait_for_url(re.compile(r"/run\.html\?id="))
    trader.locator("#live.live").wait_for(timeout=30_000)
    assert trader.locator("#run-status").inner_text() == "running"
    assert trader.locator("#run-sub").inner_text().startswith("version 1 · ")
    url = trader.url
    closed = trader.locator("#trades tbody tr:has(td.num:has-text('USDT')):not(:has(.badge))")
    closed.first.wait_for(timeout=120_000)
    assert trader.url == url, "the trades arrived without a reload"
    shot(screenshot, trader, "flow-upload-paper-run")

    # The run pins version 1 (and its code runs in the sandbox): the API says so.
    run_id = url.split("id=")[1]
    api = site.login_api(trader_email, trader_password)
    run = api.get(f"/runs/{run_id}").json()
    assert run["strategy"] == "author_sma" and run["strategy_version"] == 1
    listed = next(s for s in api.get("/strategies").json() if s["name"] == "author_sma")
    assert run["strategy_version_id"] == listed["version_id"] and listed["author"] == display_name
    # Nobody but the author and admins reads the source.
    version_id = listed["version_id"]
    assert api.get(f"/strategies/uploads/{version_id}/source").status_code == 404

    # --- version 2: a running run keeps version 1; once stopped, the trader moves it ------------------
    author = site.login_api(author_email, author_password)
    v2 = author.post("/strategies/uploads", files={"file": ("author_sma.py", AUTHOR_SMA.read_bytes() + b"\n# v2\n",
                                                            "text/x-python")})
    assert v2.status_code == 202, v2.text
    v2_id = v2.json()["id"]
    deadline = time.monotonic() + VALIDATION_TIMEOUT_MS / 1000
    while author.get(f"/strategies/uploads/{v2_id}").json()["status"] == "validating":
        assert time.monotonic() < deadline, "version 2 was not validated"
        time.sleep(0.5)
    admin_api = site.login_api(admin_email, admin_password)
    assert admin_api.post(f"/admin/strategy-versions/{v2_id}/approve").status_code == 200
    trader.reload()
    trader.locator("#run-status", has_text="running").wait_for()
    assert trader.locator("#btn-move-version").count() == 0, "a running run is never moved"
    assert api.get(f"/runs/{run_id}").json()["strategy_version"] == 1
    trader.get_by_role("button", name="Stop").click()
    trader.get_by_role("dialog").get_by_role("button", name="Stop the run").click()
    trader.locator("#run-status", has_text="stopped").wait_for()
    move = trader.get_by_role("button", name="Move to version 2")
    move.wait_for()
    assert display_name in trader.locator("#run-version").inner_text()
    shot(screenshot, trader, "flow-run-newer-version")
    move.click()
    trader.get_by_role("dialog").get_by_role("button", name="Move the run").click()
    trader.locator(".page-status.ok", has_text="version 2").wait_for()
    assert trader.locator("#run-sub").inner_text().startswith("version 2 · ")
    assert trader.locator("#btn-move-version").count() == 0
    moved = api.get(f"/runs/{run_id}").json()
    assert moved["strategy_version"] == 2 and moved["strategy_version_id"] == v2_id


def test_rejected_upload_shows_its_reason_to_the_author(page, new_page, site, tmp_path, browser_errors, screenshot):
    author_email, author_password = site.create_user(role="author")
    admin_email, admin_password = site.create_user(role="admin")
    name = f"author_sma_{secrets.token_hex(3)}"
    path = strategy_file(tmp_path, name)

    # The author drops the file onto the drop zone.
    login(page, author_email, author_password)
    page.goto("/author.html")
    page.locator("body[data-ready]").wait_for()
    dropped = page.evaluate_handle(
        "([text, fname]) => { const dt = new DataTransfer();"
        " dt.items.add(new File([text], fname, {type: 'text/x-python'})); return dt; }",
        [path.read_text(), path.name])
    page.locator("#dropzone").dispatch_event("drop", {"dataTransfer": dropped})
    page.locator("#upload-chosen", has_text=path.name).wait_for()
    page.get_by_role("button", name="Upload and validate").click()
    card = page.locator("#versions > li", has=page.locator(".kv dd", has_text=path.name)).first
    assert wait_validated(card) == "pending_review"

    admin = new_page()
    login(admin, admin_email, admin_password)
    version_id = card.get_attribute("id").removeprefix("v-")
    admin.goto(f"/admin/strategy-versions.html?id={version_id}")
    review = admin.locator("#review")
    review.get_by_role("heading", name=f"Review: {name} v1").wait_for()
    reason = review.get_by_label("Reason for the author")
    reject = review.get_by_role("button", name="Reject")

    # Blank: refused on the page, nothing sent.
    reason.fill("   ")
    reject.click()
    assert reason.get_attribute("aria-invalid") == "true"
    error_id = reason.get_attribute("aria-describedby").split()[-1]
    assert "required" in admin.locator(f"#{error_id}").inner_text()

    # Too long: the API's 422 names the field and the message sits next to it.
    reason.fill("x" * 1001)
    reject.click()
    admin.locator("#reject-form .field-error", has_text="1000").wait_for()
    assert admin.locator("#reject-form .field-error").evaluate(
        "(n) => n.parentElement.contains(document.querySelector('#reject-reason'))")
    expect_failed_load(browser_errors, 422)
    api = site.login_api(admin_email, admin_password)
    assert api.get(f"/admin/strategy-versions/{version_id}").json()["status"] == "pending_review"

    why = "The exit ignores the stoploss the description promises; add one and upload it again."
    reason.fill(why)
    reject.click()
    review.locator("#review-outcome.ok", has_text="rejected").wait_for()
    review.locator("#review-meta", has_text=why).wait_for()
    # Out of the queue; listed under any status, and under rejected.
    row = admin.locator(f"#versions tbody tr[data-id='{version_id}']")
    assert row.count() == 0
    for status in ("any", "rejected"):
        admin.get_by_label("Status").select_option(status)
        admin.get_by_role("button", name="Filter").click()
        row.locator(".badge", has_text="rejected").wait_for()

    page.reload()
    rejected = page.locator(f"#v-{version_id}[data-status='rejected']")
    rejected.locator(".review-reason", has_text=why).wait_for()
    assert rejected.locator(".badge", has_text="rejected").count() == 1
    shot(screenshot, page, "flow-upload-rejected")

    # Not in any trader's catalog.
    trader = site.login_api(*site.create_user())
    assert name not in [s["name"] for s in trader.get("/strategies").json()]


def test_a_trader_gets_no_uploads_page_and_the_api_refuses(page, site, tmp_path):
    trader_email, trader_password = site.create_user()
    admin = site.login_api(*site.create_user(role="admin"))
    before = admin.get("/admin/strategy-versions").json()["count"]

    login(page, trader_email, trader_password)
    assert page.locator("header.topbar nav a", has_text="Uploads").count() == 0
    page.goto("/author.html")
    page.locator("body[data-ready]").wait_for()
    page.locator("#author-denied").wait_for()
    assert page.locator("#upload-form").count() == 0
    assert page.locator("#versions").count() == 0

    # The API behind the page: the upload is refused and nothing is stored.
    path = strategy_file(tmp_path, f"trader_sma_{secrets.token_hex(3)}")
    api = site.login_api(trader_email, trader_password)
    reply = api.post("/strategies/uploads", files={"file": (path.name, path.read_bytes(), "text/x-python")})
    assert reply.status_code == 403, reply.text
    assert "author" in reply.json()["detail"]
    assert api.get("/strategies/uploads").json() == {"data": [], "count": 0}
    assert admin.get("/admin/strategy-versions").json()["count"] == before
    # Nor the admin's review queue.
    assert api.get("/admin/strategy-versions").status_code == 403


def test_upload_form_says_what_is_wrong_with_the_file(page, site, tmp_path):
    email, password = site.create_user(role="author")
    login(page, email, password)
    page.goto("/author.html")
    page.locator("body[data-ready]").wait_for()
    page.get_by_role("button", name="Upload and validate").click()
    file_input = page.get_by_label("Strategy file (.py)")
    assert file_input.get_attribute("aria-invalid") == "true"
    assert page.locator("#upload-form .field-error").inner_text() == "Choose a .py file to upload."
    assert page.evaluate("document.activeElement.id") == "upload-file"
    text = tmp_path / "notes.txt"
    text.write_text("not python")
    file_input.set_input_files(str(text))
    page.get_by_role("button", name="Upload and validate").click()
    assert page.locator("#upload-form .field-error").inner_text() == "Only Python files (.py) can be uploaded."
    assert page.locator("#versions li", has_text="No uploads yet").count() == 1


def test_an_invalid_upload_shows_the_step_that_failed(page, site, tmp_path, screenshot):
    email, password = site.create_user(role="author")
    login(page, email, password)
    # The bundled crossover's name: the validation's "name" step refuses it.
    card = upload_in_browser(page, strategy_file(tmp_path, "sma_cross"))
    assert wait_validated(card) == "invalid"
    assert card.locator(".badge", has_text="invalid").count() == 1
    assert card.locator(".notice.error", has_text="did not pass validation").count() == 1
    report = card.locator(".report-details")
    assert report.get_attribute("open") is not None
    failed = report.locator("ol.steps li.failed")
    assert failed.count() == 1
    assert failed.locator(".step-name").inner_text() == "name"
    assert "bundled" in failed.locator(".step-message").inner_text()
    assert "failed" in failed.inner_text()  # said in words, not by colour alone
    assert report.locator(".badge", has_text="validation failed").count() == 1
    shot(screenshot, page, "flow-upload-invalid")
