"""Account security in the browser: where the login page goes after signing in, and 2FA enrolment behind
the current password.

``login.html?next=`` must only ever lead to a page of this site: the attack values (a backslash, a tab or
a newline that browsers drop or read as ``/``, a protocol-relative or absolute URL, ``javascript:``) land
on the default page, a legitimate path (with its query and fragment) is followed. The account page asks
for the current password before setting up 2FA and sends it again to turn it on; a wrong one is shown on
the form and changes nothing; the owner receives a mail for the set-up and for turning it on and off.
"""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from test_flows import expect_failed_load

from tradefleet.security import totp

ATTACKS = [
    "/%5Cevil.example/",
    "/%5C%5Cevil.example/",
    "/%09/evil.example/",
    "/%0A/evil.example/",
    "/%0D%0A/evil.example/",
    "//evil.example/",
    "/%2F/evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "%2F%5Cevil.example",
]


def _sign_in(page: Any, email: str, password: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.mark.parametrize("next_value", ATTACKS)
def test_login_next_never_leaves_the_site(page, site, next_value):
    email, password = site.create_user()
    page.goto(f"/login.html?next={next_value}")
    _sign_in(page, email, password)
    page.wait_for_url(re.compile(r"/(\?.*)?$"))
    page.locator("header.topbar .email").wait_for()
    assert page.url == f"{site.url}/", (next_value, page.url)


def test_login_next_follows_a_path_of_this_site(page, site):
    email, password = site.create_user()
    page.goto("/login.html?next=%2Faccount.html%3Fx%3D1%23tfa")
    _sign_in(page, email, password)
    page.wait_for_url(re.compile(r"/account\.html"))
    assert page.url == f"{site.url}/account.html?x=1#tfa"
    page.locator("header.topbar .email").wait_for()


def _wait_mail(mailbox, email: str, words: str):
    return mailbox.wait_for(email, subject_contains=words, timeout_s=60)


def test_2fa_enrolment_asks_for_the_password(page, site, mailbox, browser_errors):
    email, password = site.create_user()
    page.goto("/login.html?next=%2Faccount.html")
    _sign_in(page, email, password)
    page.wait_for_url(re.compile(r"/account\.html"))
    tfa = page.locator("#tfa")
    setup = tfa.get_by_role("button", name="Set up two-factor authentication")
    setup.wait_for()

    # A wrong password: the error is on the form, no secret is shown.
    tfa.get_by_label("Current password").fill("not-the-password")
    setup.click()
    tfa.locator(".form-status", has_text="incorrect password").wait_for()
    expect_failed_load(browser_errors, 400)
    assert tfa.locator("img.qr").count() == 0

    tfa.get_by_label("Current password").fill(password)
    setup.click()
    secret = tfa.locator("code.mono").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    _wait_mail(mailbox, email, "set-up started")

    tfa.get_by_label("Code from the app").fill(pyotp.TOTP(secret).at(totp.current_step() * 30))
    tfa.get_by_role("button", name="Turn on 2FA").click()
    tfa.get_by_role("list", name="Recovery codes").wait_for()
    assert tfa.get_by_role("list", name="Recovery codes").locator("li").count() == 10
    _wait_mail(mailbox, email, "turned on")
    signing_in = site.api().post("/auth/login", data={"username": email, "password": password})
    assert signing_in.status_code == 200 and signing_in.json()["mfa_required"] is True

    # Turning it off needs the password and a code, and mails the owner too.
    page.reload()
    off = page.get_by_role("form", name="Turn off two-factor authentication")
    off.get_by_label("Password").fill(password)
    off.get_by_label("Authentication code").fill(pyotp.TOTP(secret).at((totp.current_step() + 1) * 30))
    off.get_by_role("button", name="Turn off 2FA").click()
    tfa.get_by_role("button", name="Set up two-factor authentication").wait_for()
    _wait_mail(mailbox, email, "turned off")
