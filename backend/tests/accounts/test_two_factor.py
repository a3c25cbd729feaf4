"""TOTP two-factor: enrolment (otpauth URI, SVG QR code) behind the current password, login in two steps,
codes single-use, recovery codes single-use, disabling, the encrypted secret, the owner's e-mail on each
change, and mandatory 2FA for admins."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from helpers import bearer, login
from tradefleet.models import RecoveryCode, Role, User
from tradefleet.security import crypto, totp

SETUP = "/api/v1/users/me/2fa/setup"
ENABLE = "/api/v1/users/me/2fa/enable"
DISABLE = "/api/v1/users/me/2fa/disable"
LOGIN_2FA = "/api/v1/auth/login/2fa"


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * 30)


def enrol(client, headers, password: str) -> tuple[str, list[str], int]:
    """Set up and enable 2FA (with ``password``) with the code of the current time step (still inside the
    window if the step changes before the server checks it); returns the secret, the recovery codes and
    that step."""
    setup = client.post(SETUP, headers=headers, json={"password": password})
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    step = totp.current_step()
    reply = client.post(ENABLE, headers=headers, json={"password": password, "code": code_at(secret, step)})
    assert reply.status_code == 200, reply.text
    return secret, reply.json()["recovery_codes"], step


def test_setup_gives_uri_qr_and_stores_the_secret_encrypted(user_client, session):
    reply = user_client.post(SETUP, json={"password": user_client.password})

    assert reply.status_code == 200
    body = reply.json()
    uri = urlparse(body["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert parse_qs(uri.query)["secret"] == [body["secret"]] and parse_qs(uri.query)["issuer"] == ["Tradefleet"]
    assert user_client.user.email in body["otpauth_uri"].replace("%40", "@")
    svg = ET.fromstring(body["qr_svg"])
    assert svg.tag.endswith("svg") and len(list(svg.iter())) > 1
    row = session.get(User, user_client.user.id)
    session.refresh(row)
    assert row.totp_secret and body["secret"] not in row.totp_secret
    assert crypto.decrypt(row.totp_secret) == body["secret"]
    assert row.totp_enabled is False  # not before a code proves the app has it
    assert user_client.get("/api/v1/users/me").json()["totp_enabled"] is False


def test_enable_needs_a_valid_code(user_client, session):
    pw = user_client.password
    user_client.post(SETUP, json={"password": pw})
    reply = user_client.post(ENABLE, json={"password": pw, "code": "000000"})
    assert reply.status_code == 400 and reply.json()["errors"] == [{"field": "code", "message": "invalid or already used"}]
    assert session.exec(select(RecoveryCode)).all() == []
    bad = user_client.post(ENABLE, json={"password": pw, "code": "12"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "code"


def test_enable_without_setup_is_409(user_client):
    assert user_client.post(ENABLE, json={"password": user_client.password, "code": "123456"}).status_code == 409


def test_two_step_login_with_single_use_codes(client, session, make_user, auth_headers):
    user, password = make_user(email="mfa@example.com")
    secret, codes, enrol_step = enrol(client, auth_headers(user), password)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = session.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
    assert {r.code_hash for r in stored} == {totp.hash_secret(totp.normalise_recovery_code(c)) for c in codes}
    assert client.post(SETUP, headers=auth_headers(user), json={"password": password}).status_code == 409

    first = login(client, "mfa@example.com", password).json()
    assert set(first) == {"mfa_required", "mfa_token"} and first["mfa_required"] is True
    # The mfa_token is not an access token.
    assert client.get("/api/v1/users/me", headers=bearer(first["mfa_token"])).status_code == 401

    # The enrolment's step: that code and older ones are refused from now on.
    stale = client.post(LOGIN_2FA, json={"mfa_token": first["mfa_token"], "code": code_at(secret, enrol_step)})
    assert stale.status_code == 400
    now_code = code_at(secret, totp.current_step() + 1)  # the next step is inside the window
    ok = client.post(LOGIN_2FA, json={"mfa_token": first["mfa_token"], "code": now_code})
    assert ok.status_code == 200, ok.text
    assert client.get("/api/v1/users/me", headers=bearer(ok.json()["access_token"])).json()["totp_enabled"] is True

    again = login(client, "mfa@example.com", password).json()
    replay = client.post(LOGIN_2FA, json={"mfa_token": again["mfa_token"], "code": now_code})
    assert replay.status_code == 400  # a code never works twice

    recovery = client.post(LOGIN_2FA, json={"mfa_token": again["mfa_token"], "code": codes[0].upper()})
    assert recovery.status_code == 200
    third = login(client, "mfa@example.com", password).json()
    assert client.post(LOGIN_2FA, json={"mfa_token": third["mfa_token"], "code": codes[0]}).status_code == 400
    assert client.post(LOGIN_2FA, json={"mfa_token": third["mfa_token"], "code": codes[1]}).status_code == 200


def test_bad_mfa_tokens_are_401(client, make_user):
    user, _ = make_user()
    from tradefleet.security.tokens import create_access_token

    for token in ("garbage", create_access_token(user.id)):
        reply = client.post(LOGIN_2FA, json={"mfa_token": token, "code": "123456"})
        assert reply.status_code == 401


def test_disable_needs_password_and_code(client, session, make_user, auth_headers):
    user, password = make_user()
    headers = auth_headers(user)
    secret, codes, _ = enrol(client, headers, password)
    code = code_at(secret, totp.current_step() + 1)

    wrong_pw = client.post(DISABLE, headers=headers, json={"password": "wrong password", "code": code})
    assert wrong_pw.status_code == 400 and wrong_pw.json()["errors"][0]["field"] == "password"
    wrong_code = client.post(DISABLE, headers=headers, json={"password": password, "code": "000000"})
    assert wrong_code.status_code == 400 and wrong_code.json()["errors"][0]["field"] == "code"
    session.expire_all()
    assert session.get(User, user.id).totp_enabled is True

    assert client.post(DISABLE, headers=headers, json={"password": password, "code": codes[3]}).status_code == 204
    session.expire_all()
    row = session.get(User, user.id)
    assert row.totp_enabled is False and row.totp_secret is None
    assert session.exec(select(RecoveryCode)).all() == []
    assert set(login(client, user.email, password).json()) == {"access_token", "refresh_token", "token_type",
                                                               "expires_in"}


def test_admins_without_2fa_are_refused_when_required(client, make_user, auth_headers, settings_env):
    admin, admin_password = make_user(role=Role.admin)
    headers = auth_headers(admin)
    assert client.get("/api/v1/admin/users", headers=headers).status_code == 200

    settings_env(REQUIRE_2FA_FOR_ADMINS="true")
    refused = client.get("/api/v1/admin/users", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("two-factor authentication required for admins")
    assert client.get("/api/v1/admin/strategies", headers=headers).status_code == 403
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200  # not an admin route

    enrol(client, headers, admin_password)
    assert client.get("/api/v1/admin/users", headers=headers).status_code == 200


def test_totp_codes_pure():
    secret = totp.new_secret()
    step = totp.current_step(1_700_000_000)
    assert totp.matching_step(secret, code_at(secret, step), at_s=1_700_000_000) == step
    assert totp.matching_step(secret, code_at(secret, step - 2), at_s=1_700_000_000) is None
    assert totp.matching_step(secret, "12345a", at_s=1_700_000_000) is None
    assert totp.normalise_recovery_code(" ABCD-efgh ") == "abcdefgh"


def test_secret_encryption_rotates_with_totp_encryption_keys(settings_env):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings_env(TOTP_ENCRYPTION_KEY=old)
    token = crypto.encrypt("JBSWY3DPEHPK3PXP")
    settings_env(TOTP_ENCRYPTION_KEY=f"{new},{old}")
    assert crypto.decrypt(token) == "JBSWY3DPEHPK3PXP"
    rotated = crypto.rotate(token)
    settings_env(TOTP_ENCRYPTION_KEY=new)
    assert crypto.decrypt(rotated) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(token)
    # Secrets of the symmetric exchange-key vault's keys still open until `keys migrate-sealed`.
    legacy = Fernet.generate_key().decode()
    earlier = Fernet(legacy).encrypt(b"JBSWY3DPEHPK3PXP").decode()
    settings_env(API_ENCRYPTION_KEYS=legacy)
    assert crypto.decrypt(earlier) == "JBSWY3DPEHPK3PXP"
    Fernet(new).decrypt(crypto.rotate(earlier).encode())


def test_production_without_a_totp_key_never_falls_back(settings_env, monkeypatch):
    from tradefleet.config import Settings

    unchecked = Settings.model_construct(ENVIRONMENT="production", TOTP_ENCRYPTION_KEY=[], API_ENCRYPTION_KEYS=[])
    monkeypatch.setattr(crypto, "get_settings", lambda: unchecked)
    with pytest.raises(crypto.CryptoError, match="TOTP_ENCRYPTION_KEY is not set"):
        crypto.encrypt("JBSWY3DPEHPK3PXP")


def test_secret_unreadable_after_a_key_change_is_503_not_500(client, make_user, auth_headers, settings_env):
    settings_env(TOTP_ENCRYPTION_KEY=Fernet.generate_key().decode())
    user, password = make_user()
    headers = auth_headers(user)
    enrol(client, headers, password)
    mfa = login(client, user.email, password).json()["mfa_token"]

    settings_env(TOTP_ENCRYPTION_KEY=Fernet.generate_key().decode())  # the old key is gone
    reply = client.post(LOGIN_2FA, json={"mfa_token": mfa, "code": "123456"})
    assert reply.status_code == 503 and "encryption keys changed" in reply.json()["detail"]


def test_password_logins_do_not_reset_the_count_of_wrong_codes(client, make_user, auth_headers, settings_env):
    # Knowing the password must not buy unlimited code guesses: only a correct second factor clears
    # the failure count, so wrong codes spread over several password logins still lock the account.
    settings_env(LOCKOUT_THRESHOLD="3", RATE_LIMIT_LOGIN="1000/minute", RATE_LIMIT_2FA="1000/minute")
    user, password = make_user(email="guess@example.com")
    secret, _, _ = enrol(client, auth_headers(user), password)
    wrong = code_at(secret, totp.current_step() + 40)  # far outside the window
    for _ in range(3):
        first = login(client, "guess@example.com", password)
        assert first.status_code == 200, first.text
        reply = client.post(LOGIN_2FA, json={"mfa_token": first.json()["mfa_token"], "code": wrong})
        assert reply.status_code == 400
    locked = login(client, "guess@example.com", password)
    assert locked.status_code == 429 and "retry-after" in locked.headers


def test_setup_and_enable_need_the_current_password(user_client, session, outbox):
    user = user_client.user
    missing = user_client.post(SETUP)
    assert missing.status_code == 422 and [e["field"] for e in missing.json()["errors"]] == ["body"]
    wrong = user_client.post(SETUP, json={"password": "not the password"})
    assert wrong.status_code == 400 and wrong.json()["errors"] == [{"field": "password",
                                                                   "message": "incorrect password"}]
    session.expire_all()
    assert session.get(User, user.id).totp_secret is None

    secret = user_client.post(SETUP, json={"password": user_client.password}).json()["secret"]
    code = code_at(secret, totp.current_step())
    no_pw = user_client.post(ENABLE, json={"code": code})
    assert no_pw.status_code == 422 and [e["field"] for e in no_pw.json()["errors"]] == ["password"]
    bad_pw = user_client.post(ENABLE, json={"password": "not the password", "code": code})
    assert bad_pw.status_code == 400 and bad_pw.json()["errors"][0]["field"] == "password"
    session.expire_all()
    row = session.get(User, user.id)
    assert row.totp_enabled is False and row.totp_last_step is None  # the code was not spent either
    assert session.exec(select(RecoveryCode)).all() == []
    ok = user_client.post(ENABLE, json={"password": user_client.password, "code": code})
    assert ok.status_code == 200, ok.text
    assert [m[2]["event"] for m in outbox.of("two_factor_changed")] == ["setup", "enabled"]


def test_owner_is_mailed_on_setup_enable_and_disable(client, make_user, auth_headers, smtp_server, outbox):
    user, password = make_user()
    headers = auth_headers(user)
    secret, codes, _ = enrol(client, headers, password)
    assert client.post(DISABLE, headers=headers, json={"password": password, "code": codes[0]}).status_code == 204

    assert [(m[0], m[2]["event"]) for m in outbox.of("two_factor_changed")] == [
        (user.email, "setup"), (user.email, "enabled"), (user.email, "disabled")]
    mails = [m for m in smtp_server.messages if user.email in m.envelope_rcpt]
    subjects = [m["Subject"] for m in mails]
    assert subjects == ["Tradefleet: two-factor authentication set-up started",
                        "Tradefleet: two-factor authentication turned on",
                        "Tradefleet: two-factor authentication turned off"], subjects
    for message in mails:
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert user.email in text and "reset it at once" in text
        assert secret not in text and all(c not in text for c in codes)  # no secret goes by mail


def test_failed_changes_send_no_mail(client, make_user, auth_headers, outbox):
    user, password = make_user()
    headers = auth_headers(user)
    client.post(SETUP, headers=headers, json={"password": "not the password"})
    secret, _, _ = enrol(client, headers, password)
    client.post(DISABLE, headers=headers, json={"password": "not the password", "code": "000000"})
    client.post(DISABLE, headers=headers, json={"password": password, "code": "000000"})
    assert [m[2]["event"] for m in outbox.of("two_factor_changed")] == ["setup", "enabled"]
