"""The admin users page knows every role: an author is shown as an author (not as a trader an admin could
demote by touching the row), can be searched for, and a trader can be made an author, through the real Nginx
in front of the real platform."""

from __future__ import annotations


from playwright.sync_api import expect
from test_flows import login


def test_authors_are_shown_searched_and_made_from_the_users_page(page, site):
    author, _ = site.create_user(role="author")
    trader, trader_password = site.create_user()
    admin, admin_password = site.create_user(role="admin")
    login(page, admin, admin_password)

    page.goto("/admin/")
    page.locator("body[data-ready]").wait_for()
    page.get_by_label("E-mail contains").fill(author)
    page.locator("#user-search").get_by_label("Role").select_option("author")
    page.get_by_role("button", name="Search").click()
    row = page.locator(f'#users tbody tr[data-email="{author}"]')
    expect(page.locator("#users tbody tr")).to_have_count(1)
    expect(row.get_by_label(f"Role of {author}")).to_have_value("author")
    options = row.get_by_label(f"Role of {author}").locator("option").all_inner_texts()
    assert options == ["trader", "author", "admin"]

    page.get_by_label("E-mail contains").fill(trader)
    page.locator("#user-search").get_by_label("Role").select_option("")
    page.get_by_role("button", name="Search").click()
    select = page.locator(f'#users tbody tr[data-email="{trader}"]').get_by_label(f"Role of {trader}")
    expect(select).to_have_value("trader")
    select.select_option("author")
    expect(page.locator(".page-status")).to_contain_text(f"{trader} is now author.")
    me = site.login_api(trader, trader_password).get("/users/me").json()
    assert me["role"] == "author"
