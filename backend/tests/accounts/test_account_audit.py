"""The audit log records every change to how an account signs in: registration, e-mail verification,
password change (and a failed attempt), password reset, two-factor set-up, enabling and disabling,
recovery-code use and session revocation; each event names its user, and whether a sign-in used a second
factor is kept (it is a flag, not a secret)."""

from __future__ import annotations

import uuid

import pyotp
from sqlmodel import Session, select

from helpers import bearer, link_in, login, token_of
from tradefleet.models import AuditEvent, User
from tradefleet.security import totp
from tradefleet.services import auth as auth_service

API = "/api/v1"
PASSWORD = "correct horse battery"


def actions(session: Session, user_id) -> list[tuple[str, dict]]:  # noqa: ANN001
    session.expire_all()
    rows = session.exec(select(AuditEvent).where(AuditEvent.actor_id == user_id).order_by(AuditEvent.id)).all()
    return [(r.action, {k: v for k, v in (r.detail or {}).items() if k != "request_id"}) for r in rows]


def test_registration_and_verification_are_recorded(client, session, smtp_server):
    reply = client.post(f"{API}/auth/register", json={"email": "audited@example.com", "password": PASSWORD})
    assert reply.status_code == 201
    user_id = reply.json()["id"]
    token = token_of(link_in(smtp_server.messages[0]))
    assert client.post(f"{API}/auth/verify-email", json={"token": token}).status_code == 200
    # A second use of the link fails and records nothing.
    assert client.post(f"{API}/auth/verify-email", json={"token": token}).status_code == 400

    recorded = actions(session, uuid.UUID(user_id))
    assert [a for a, _ in recorded] == ["auth.registered", "auth.email_verified"]
    [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "auth.registered")).all()
    assert (event.target_type, event.target_id, event.actor_email) == ("user", user_id, "audited@example.com")


def test_password_change_failed_and_done_are_recorded(client, session, make_user):
    user, password = make_user()
    headers = bearer(login(client, user.email, password).json()["access_token"])
    wrong = client.post(f"{API}/users/me/password", headers=headers,
                        json={"current_password": "not my password", "new_password": "a new password!"})
    assert wrong.status_code == 400
    ok = client.post(f"{API}/users/me/password", headers=headers,
                     json={"current_password": password, "new_password": "a new password!"})
    assert ok.status_code == 204

    assert actions(session, user.id) == [
        ("auth.login", {"mfa": False}),
        ("auth.password_change_failed", {"reason": "incorrect current password"}),
        ("auth.password_changed", {"sessions_revoked": True}),
    ]


def test_password_reset_is_recorded(client, session, make_user, smtp_server):
    user, _ = make_user(email="reset-audit@example.com")
    assert auth_service.send_password_reset(session=session, email=user.email) is True
    token = token_of(link_in(smtp_server.messages[0]))
    assert client.post(f"{API}/auth/password-reset/confirm",
                       json={"token": token, "new_password": "long enough now"}).status_code == 200
    assert actions(session, user.id) == [("auth.password_reset", {"sessions_revoked": True})]


def test_two_factor_changes_and_recovery_code_use_are_recorded(client, session, make_user, auth_headers):
    user, password = make_user()
    headers = auth_headers(user)
    secret = client.post(f"{API}/users/me/2fa/setup", headers=headers, json={"password": password}).json()["secret"]
    enable = client.post(f"{API}/users/me/2fa/enable", headers=headers,
                         json={"password": password, "code": pyotp.TOTP(secret).at(totp.current_step() * 30)})
    assert enable.status_code == 200, enable.text
    codes = enable.json()["recovery_codes"]

    first = login(client, user.email, password).json()
    signed_in = client.post(f"{API}/auth/login/2fa", json={"mfa_token": first["mfa_token"], "code": codes[0]})
    assert signed_in.status_code == 200
    # A wrong password leaves 2FA on and records no change.
    assert client.post(f"{API}/users/me/2fa/disable", headers=headers,
                       json={"password": "wrong password", "code": codes[1]}).status_code == 400
    assert client.post(f"{API}/users/me/2fa/disable", headers=headers,
                       json={"password": password, "code": codes[1]}).status_code == 204

    assert actions(session, user.id) == [
        ("auth.2fa_setup_started", {}),
        ("auth.2fa_enabled", {}),
        ("auth.login_password_ok", {"mfa": "pending"}),
        ("auth.recovery_code_used", {"recovery_remaining": 9}),
        ("auth.login", {"mfa": True}),
        ("auth.recovery_code_used", {"recovery_remaining": 8}),
        ("auth.2fa_disabled", {}),
    ]


def test_revoking_every_session_is_recorded(client, session, make_user):
    user, password = make_user()
    pair = login(client, user.email, password).json()
    auth_service.revoke_all_sessions(session=session, user=session.get(User, user.id))
    assert client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert [a for a, _ in actions(session, user.id)] == ["auth.login", "auth.sessions_revoked"]
