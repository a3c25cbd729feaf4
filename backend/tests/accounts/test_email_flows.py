"""Sign-up verification, password reset and change, with mails sent through the real ``email.send`` task
and the ``emails`` package to a real SMTP server on loopback (aiosmtpd); the tests read the received
mail, take the link and call the API with its token. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func
from sqlmodel import select

from helpers import bearer, html_body, link_in, login, text_body, token_of
from tradefleet.emails import EmailData, render_email
from tradefleet.models import OneTimeToken, User
from tradefleet.security.tokens import hash_opaque_token
from tradefleet.worker.email_tasks import send_email

REGISTER = "/api/v1/auth/register"
VERIFY = "/api/v1/auth/verify-email"
RESET_REQUEST = "/api/v1/auth/password-reset/request"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
PASSWORD = "correct horse battery"


def _user(session, email):
    session.expire_all()
    return session.exec(select(User).where(User.email == email)).one()


def test_register_mails_a_link_that_verifies_once(client, session, smtp_server, settings_env):
    settings_env(FRONTEND_BASE_URL="https://app.tradefleet.test")
    reply = client.post(REGISTER, json={"email": "new@example.com", "password": PASSWORD})
    assert reply.status_code == 201 and reply.json()["is_verified"] is False

    [message] = smtp_server.messages
    assert message.envelope_rcpt == ["new@example.com"]
    assert message["To"] == "new@example.com"
    assert "noreply@tradefleet.test" in message["From"]
    assert message["Subject"] == "Tradefleet: confirm your e-mail address"
    link = link_in(message)
    assert link.startswith("https://app.tradefleet.test/verify.html?token=")
    token = token_of(link)
    # Stored hashed: the database never holds the token itself.
    rows = session.exec(select(OneTimeToken)).all()
    assert [r.token_hash for r in rows] == [hash_opaque_token(token)] and token not in str(rows[0])

    verified = client.post(VERIFY, json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["is_verified"] is True and _user(session, "new@example.com").is_verified

    again = client.post(VERIFY, json={"token": token})
    assert again.status_code == 400
    assert again.json()["errors"] == [{"field": "token", "message": "invalid, expired or already used; ask for a new link"}]


def test_verification_link_expires(client, session, smtp_server, settings_env):
    client.post(REGISTER, json={"email": "late@example.com", "password": PASSWORD})
    token = token_of(link_in(smtp_server.messages[0]))
    row = session.exec(select(OneTimeToken)).one()
    from datetime import timedelta
    row.expires_at = row.expires_at - timedelta(hours=49)
    session.add(row)
    session.commit()

    assert client.post(VERIFY, json={"token": token}).status_code == 400
    assert _user(session, "late@example.com").is_verified is False


def test_resend_verification_needs_a_token_and_sends_a_new_link(client, session, smtp_server):
    client.post(REGISTER, json={"email": "again@example.com", "password": PASSWORD})
    access = login(client, "again@example.com", PASSWORD).json()["access_token"]

    assert client.post("/api/v1/auth/resend-verification").status_code == 401
    assert client.post("/api/v1/auth/resend-verification", headers=bearer(access)).status_code == 202
    first, second = smtp_server.messages
    assert token_of(link_in(first)) != token_of(link_in(second))
    assert client.post(VERIFY, json={"token": token_of(link_in(second))}).status_code == 200
    # Once verified, resending is a conflict.
    assert client.post("/api/v1/auth/resend-verification", headers=bearer(access)).status_code == 409


def test_bad_verification_tokens_are_400_naming_the_field(client):
    for body in ({"token": "x" * 43}, {"token": ""}, {}):
        reply = client.post(VERIFY, json=body)
        assert reply.status_code in (400, 422)
        assert [e["field"] for e in reply.json()["errors"]] == ["token"]


def test_password_reset_never_tells_whether_an_account_exists(client, session, make_user, smtp_server):
    make_user(email="owner@example.com", password=PASSWORD)

    known = client.post(RESET_REQUEST, json={"email": "Owner@Example.com"})
    unknown = client.post(RESET_REQUEST, json={"email": "nobody@example.com"})

    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert [m.envelope_rcpt for m in smtp_server.messages] == [["owner@example.com"]]
    assert session.exec(select(func.count()).select_from(OneTimeToken)).one() == 1


def test_password_reset_link_sets_the_password_once_and_signs_out(client, session, make_user, smtp_server,
                                                                  settings_env):
    settings_env(FRONTEND_BASE_URL="http://127.0.0.1:8000")
    user, old_password = make_user(email="forgot@example.com")
    before = login(client, "forgot@example.com", old_password).json()

    assert client.post(RESET_REQUEST, json={"email": "forgot@example.com"}).status_code == 202
    [message] = smtp_server.messages
    assert message["Subject"] == "Tradefleet: reset your password"
    link = link_in(message)
    assert link.startswith("http://127.0.0.1:8000/reset.html?token=")
    token = token_of(link)

    new_password = "a brand new password"
    reply = client.post(RESET_CONFIRM, json={"token": token, "new_password": new_password})
    assert reply.status_code == 200, reply.text
    assert reply.json()["email"] == "forgot@example.com" and reply.json()["is_verified"] is True

    assert login(client, "forgot@example.com", old_password).status_code == 401
    assert login(client, "forgot@example.com", new_password).status_code == 200
    # Every token issued before the reset is dead: access and refresh.
    assert client.get("/api/v1/users/me", headers=bearer(before["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": before["refresh_token"]}).status_code == 401
    # The link cannot be used again, even with another password.
    again = client.post(RESET_CONFIRM, json={"token": token, "new_password": "yet another password"})
    assert again.status_code == 400 and again.json()["errors"][0]["field"] == "token"
    assert login(client, "forgot@example.com", new_password).status_code == 200
    # The owner is told the password changed.
    assert smtp_server.messages[-1]["Subject"] == "Tradefleet: your password was changed"


def test_only_the_newest_reset_link_works(client, make_user, smtp_server):
    make_user(email="twice@example.com")
    client.post(RESET_REQUEST, json={"email": "twice@example.com"})
    client.post(RESET_REQUEST, json={"email": "twice@example.com"})
    old, new = (token_of(link_in(m)) for m in smtp_server.messages)

    assert client.post(RESET_CONFIRM, json={"token": old, "new_password": "new password one"}).status_code == 400
    assert client.post(RESET_CONFIRM, json={"token": new, "new_password": "new password two"}).status_code == 200


def test_reset_confirm_rejects_a_short_password_and_keeps_the_token(client, make_user, smtp_server):
    make_user(email="short@example.com")
    client.post(RESET_REQUEST, json={"email": "short@example.com"})
    token = token_of(link_in(smtp_server.messages[0]))

    reply = client.post(RESET_CONFIRM, json={"token": token, "new_password": "short"})
    assert reply.status_code == 422 and [e["field"] for e in reply.json()["errors"]] == ["new_password"]
    assert client.post(RESET_CONFIRM, json={"token": token, "new_password": "long enough now"}).status_code == 200


def test_change_password(client, session, make_user, auth_headers, smtp_server):
    user, password = make_user(email="change@example.com")
    pair = login(client, "change@example.com", password).json()
    headers = bearer(pair["access_token"])
    hashed_before = _user(session, "change@example.com").hashed_password

    wrong = client.post("/api/v1/users/me/password", headers=headers,
                        json={"current_password": "not my password", "new_password": "a new password!"})
    assert wrong.status_code == 400 and wrong.json()["errors"][0]["field"] == "current_password"
    assert _user(session, "change@example.com").hashed_password == hashed_before

    ok = client.post("/api/v1/users/me/password", headers=headers,
                     json={"current_password": password, "new_password": "a new password!"})
    assert ok.status_code == 204
    assert client.get("/api/v1/users/me", headers=headers).json() == {"detail": "token revoked; sign in again"}
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert login(client, "change@example.com", "a new password!").status_code == 200
    assert [m["Subject"] for m in smtp_server.messages] == ["Tradefleet: your password was changed"]


# --- rendering and delivery ---------------------------------------------------------------------


def test_render_email_is_pure_and_escapes_html(settings_env):
    data = render_email("verify_email", {"email": "<b>x</b>@example.com", "link": "http://h/verify.html?token=abc",
                                         "expire_hours": 48})
    assert isinstance(data, EmailData)
    assert data.subject == "Tradefleet: confirm your e-mail address"
    assert "&lt;b&gt;x&lt;/b&gt;@example.com" in data.html and "<b>x</b>" not in data.html
    assert "<b>x</b>@example.com" in data.text  # the text part is not HTML
    assert "http://h/verify.html?token=abc" in data.text and "48 hours" in data.text
    with pytest.raises(Exception, match="link"):
        render_email("verify_email", {"email": "a@example.com", "expire_hours": 1})


def test_without_smtp_the_mail_goes_to_the_log(caplog, settings_env):
    with caplog.at_level(logging.WARNING, logger="tradefleet.emails.send"):
        result = send_email.apply(args=["log@example.com", "reset_password",
                                        {"email": "log@example.com", "link": "http://h/reset.html?token=t0k",
                                         "expire_minutes": 60}])
    assert result.get() == "log"
    [record] = [r for r in caplog.records if r.name == "tradefleet.emails.send"]
    assert "log@example.com" in record.getMessage() and "token=t0k" in record.getMessage()


def test_send_retries_temporary_smtp_failures_then_delivers(smtp_server):
    smtp_server.reject_next = 2

    result = send_email.apply(args=["retry@example.com", "password_changed", {"email": "retry@example.com"}])

    assert result.get() == "smtp"
    assert smtp_server.attempts == 3
    assert [m.envelope_rcpt for m in smtp_server.messages] == [["retry@example.com"]]
    assert text_body(smtp_server.messages[0]).startswith("Hello,")
    assert "<p>" in html_body(smtp_server.messages[0])


def test_send_gives_up_after_bounded_retries(smtp_server):
    smtp_server.reject_next = 100

    result = send_email.apply(args=["never@example.com", "password_changed", {"email": "never@example.com"}])

    assert result.failed()
    assert smtp_server.attempts == send_email.max_retries + 1
    assert smtp_server.messages == []
