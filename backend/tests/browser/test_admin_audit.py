"""The admin audit page shows each entry's detail as readable label/value pairs, not raw JSON, through the
real Nginx in front of the real platform."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from test_flows import login


def row_of(page: Any, action: str) -> Any:
    """The audit table's row whose action cell is exactly ``action``."""
    cell = page.get_by_role("cell", name=action, exact=True)
    return page.locator("#audit tbody tr").filter(has=cell)


def test_audit_details_read_as_labels_and_values(page, site):
    trader, trader_password = site.create_user()
    api = site.api()
    assert api.post("/auth/login", data={"username": trader, "password": "not the password"}).status_code == 401
    site.login_api(trader, trader_password)
    admin, admin_password = site.create_user(role="admin")
    login(page, admin, admin_password)

    page.goto("/admin/audit.html")
    page.locator("body[data-ready]").wait_for()
    page.get_by_label("Actor e-mail or id").fill(trader)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit tbody tr")).to_have_count(2)  # the trader's failed and good sign-in
    failed = row_of(page, "auth.login_failed")
    pairs = dict(zip(failed.locator("dl.pairs dt").all_inner_texts(), failed.locator("dl.pairs dd").all_inner_texts()))
    assert pairs == {"reason": "bad credentials", "locked s": "0"}
    signed_in = row_of(page, "auth.login")
    assert signed_in.locator("dl.pairs dt").all_inner_texts() == ["mfa"]
    assert signed_in.locator("dl.pairs dd").all_inner_texts() == ["no"]
    assert "{" not in page.locator("#audit tbody").inner_text()
