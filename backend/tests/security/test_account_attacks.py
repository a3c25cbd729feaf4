"""Attacks on accounts, tried as an outsider would through the real API (PostgreSQL, real Redis and
process memory for the counters), each asserting it fails with nothing changed.

* A stolen access token cannot enrol the thief's authenticator: 2FA setup and enable need the current
  password (missing: 422 naming ``password``; wrong: 400 naming it); the user row and its recovery codes
  are unchanged.
* Guessing passwords from one IP locks that IP only: the owner still signs in from another address.
* Guessing spread over many IPs locks the account everywhere, but never the password reset (request and
  confirm both work while locked), and the completed reset lifts every lock, admins included; spending
  an account's reset-request allowance from one IP leaves the owner's own address free to ask.
* ``create-admin`` on an address someone pre-registered is refused and changes nothing.
"""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from tradefleet.models import RecoveryCode, Role, User
from tradefleet.security import lockout

API = "/api/v1"
OWNER_IP = ("198.51.100.10", 40000)
ATTACKER_IP = ("203.0.113.66", 40000)
ONE_DB = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture(params=["memory", "redis"])
def storage(request, settings_env):
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param


def _client(app, peer) -> TestClient:
    return TestClient(app, client=peer, raise_server_exceptions=False)


def _login(c: TestClient, email: str, password: str):
    return c.post(f"{API}/auth/login", data={"username": email, "password": password})


def _user_row(session, user_id) -> dict:
    session.expire_all()
    row = session.get(User, user_id)
    return {"totp_secret": row.totp_secret, "totp_enabled": row.totp_enabled, "token_version": row.token_version,
            "hashed_password": row.hashed_password, "role": row.role}


@ONE_DB
def test_stolen_token_cannot_enrol_2fa_without_the_password(db, app, session, make_user, auth_headers, outbox):
    user, password = make_user()
    stolen = auth_headers(user)
    before = _user_row(session, user.id)
    with _client(app, ATTACKER_IP) as c:
        missing = c.post(f"{API}/users/me/2fa/setup", headers=stolen)
        assert missing.status_code == 422 and [e["field"] for e in missing.json()["errors"]] == ["body"]
        empty = c.post(f"{API}/users/me/2fa/setup", headers=stolen, json={})
        assert empty.status_code == 422 and [e["field"] for e in empty.json()["errors"]] == ["password"]
        wrong = c.post(f"{API}/users/me/2fa/setup", headers=stolen, json={"password": "a guess 12345"})
        assert wrong.status_code == 400
        assert wrong.json()["errors"] == [{"field": "password", "message": "incorrect password"}]
        assert "secret" not in wrong.text
        # Enable without the password is refused by its schema.
        enable = c.post(f"{API}/users/me/2fa/enable", headers=stolen, json={"code": "123456"})
        assert enable.status_code == 422 and [e["field"] for e in enable.json()["errors"]] == ["password"]
    assert _user_row(session, user.id) == before
    assert session.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all() == []
    assert outbox.of("two_factor_changed") == []

    # The owner started a set-up; the thief tries to finish it (or restart it) with a guessed password.
    with _client(app, OWNER_IP) as owner:
        assert owner.post(f"{API}/users/me/2fa/setup", headers=stolen, json={"password": password}).status_code == 200
    pending = _user_row(session, user.id)
    with _client(app, ATTACKER_IP) as c:
        for path, body in [("/users/me/2fa/enable", {"password": "a guess 12345", "code": "123456"}),
                           ("/users/me/2fa/setup", {"password": "a guess 12345"})]:
            reply = c.post(f"{API}{path}", headers=stolen, json=body)
            assert reply.status_code == 400 and reply.json()["errors"][0]["field"] == "password", reply.text
    assert _user_row(session, user.id) == pending
    assert pending["totp_enabled"] is False


@ONE_DB
def test_lock_from_an_attacker_ip_does_not_lock_the_owner_elsewhere(storage, db, app, session, make_user,
                                                                    settings_env):
    settings_env(LOCKOUT_THRESHOLD=5, LOCKOUT_ACCOUNT_THRESHOLD=20, RATE_LIMIT_LOGIN="1000/minute")
    user, password = make_user(role=Role.admin)  # admins alike
    with _client(app, ATTACKER_IP) as attacker:
        codes = [_login(attacker, user.email, f"guess-{i}-password").status_code for i in range(5)]
        assert codes == [401] * 5
        locked = _login(attacker, user.email, password)  # even the right password, from that IP
        assert locked.status_code == 429 and "retry-after" in locked.headers
    assert lockout.locked_for(user.email, ATTACKER_IP[0]) > 0
    assert lockout.account_locked_for(user.email) == 0
    with _client(app, OWNER_IP) as owner:
        reply = _login(owner, user.email, password)
        assert reply.status_code == 200, reply.text
    # The owner's sign-in did not lift the attacker's lock.
    assert lockout.locked_for(user.email, ATTACKER_IP[0]) > 0


@ONE_DB
def test_distributed_guessing_locks_the_account_but_never_the_reset(storage, db, app, session, make_user,
                                                                    settings_env, outbox):
    settings_env(LOCKOUT_THRESHOLD=5, LOCKOUT_ACCOUNT_THRESHOLD=8, LOCKOUT_ACCOUNT_BASE_S=600,
                 RATE_LIMIT_LOGIN="1000/minute", RATE_LIMIT_PASSWORD_RESET="1000/minute")
    user, password = make_user(role=Role.admin)
    attackers = [(f"203.0.113.{i}", 40000) for i in range(1, 5)]
    for peer in attackers:  # 4 IPs x 2 guesses: under the per-IP threshold, at the account-wide one
        with _client(app, peer) as c:
            assert [_login(c, user.email, "guess-password-1").status_code for _ in range(2)] == [401, 401]
    assert 590 <= lockout.account_locked_for(user.email) <= 600
    locked_mails = outbox.of("account_locked")
    assert len(locked_mails) == 1 and locked_mails[0][2]["everywhere"] is True

    with _client(app, OWNER_IP) as owner:
        refused = _login(owner, user.email, password)
        assert refused.status_code == 429 and "reset the password" in refused.json()["detail"]
        # The reset path is open while the account is locked: request, then confirm with the mailed link.
        assert owner.post(f"{API}/auth/password-reset/request", json={"email": user.email}).status_code == 202
        [reset] = [m for m in outbox.of("reset_password") if m[0] == user.email]
        token = re.search(r"token=([A-Za-z0-9_\-]+)", reset[2]["link"]).group(1)
        confirmed = owner.post(f"{API}/auth/password-reset/confirm",
                               json={"token": token, "new_password": "owner new password 1"})
        assert confirmed.status_code == 200, confirmed.text
        assert lockout.account_locked_for(user.email) == 0
        assert _login(owner, user.email, "owner new password 1").status_code == 200
    # Every per-IP lock is lifted too: an attacker IP that had locked itself starts from zero.
    for peer in attackers:
        assert lockout.locked_for(user.email, peer[0]) == 0


@ONE_DB
def test_completed_reset_lifts_a_per_ip_lock(storage, db, app, session, make_user, settings_env, outbox):
    settings_env(LOCKOUT_THRESHOLD=3, RATE_LIMIT_LOGIN="1000/minute", RATE_LIMIT_PASSWORD_RESET="1000/minute")
    user, _ = make_user()
    with _client(app, OWNER_IP) as owner:  # the owner forgot the password and locked their own IP
        assert [_login(owner, user.email, "forgot-password-1").status_code for _ in range(3)] == [401] * 3
        assert _login(owner, user.email, "forgot-password-1").status_code == 429
        assert owner.post(f"{API}/auth/password-reset/request", json={"email": user.email}).status_code == 202
        token = re.search(r"token=([A-Za-z0-9_\-]+)", outbox.of("reset_password")[-1][2]["link"]).group(1)
        assert owner.post(f"{API}/auth/password-reset/confirm",
                          json={"token": token, "new_password": "remembered pw 1"}).status_code == 200
        assert _login(owner, user.email, "remembered pw 1").status_code == 200


@ONE_DB
def test_failed_reset_confirm_does_not_lift_a_lock(storage, db, app, make_user, settings_env):
    settings_env(LOCKOUT_THRESHOLD=2, RATE_LIMIT_LOGIN="1000/minute", RATE_LIMIT_PASSWORD_RESET="1000/minute")
    user, password = make_user()
    with _client(app, ATTACKER_IP) as attacker:
        assert [_login(attacker, user.email, "guess-password-1").status_code for _ in range(2)] == [401, 401]
        bad = attacker.post(f"{API}/auth/password-reset/confirm",
                            json={"token": "forged-token", "new_password": "attacker pw 123"})
        assert bad.status_code == 400
        assert _login(attacker, user.email, password).status_code == 429


@ONE_DB
def test_create_admin_on_a_pre_registered_address_is_refused(db, app, session, settings_env):
    from tradefleet.cli import app as cli

    with _client(app, ATTACKER_IP) as attacker:
        registered = attacker.post(f"{API}/auth/register",
                                   json={"email": "admin@corp.example", "password": "attacker pw 123"})
        assert registered.status_code == 201
        user_id = uuid.UUID(registered.json()["id"])
        before = _user_row(session, user_id)
        result = CliRunner().invoke(cli, ["create-admin", "--email", "admin@corp.example",
                                          "--password", "operator pw 123"])
        assert result.exit_code == 1 and "--promote-existing" in result.output
        assert _user_row(session, user_id) == before  # still a trader, the attacker's password
        assert _login(attacker, "admin@corp.example", "attacker pw 123").status_code == 200
        assert _login(attacker, "admin@corp.example", "operator pw 123").status_code == 401


@ONE_DB
def test_spending_the_reset_allowance_from_one_ip_does_not_block_the_owner(storage, db, app, make_user,
                                                                           settings_env, outbox):
    settings_env(RATE_LIMIT_PASSWORD_RESET="3/minute")
    user, _ = make_user()
    with _client(app, ATTACKER_IP) as attacker:
        codes = [attacker.post(f"{API}/auth/password-reset/request", json={"email": user.email}).status_code
                 for _ in range(4)]
        assert codes == [202, 202, 202, 429]
    sent = len(outbox.of("reset_password"))
    assert sent == 3
    with _client(app, OWNER_IP) as owner:
        assert owner.post(f"{API}/auth/password-reset/request", json={"email": user.email}).status_code == 202
    assert len(outbox.of("reset_password")) == sent + 1
