"""Roles and user administration: ``GET /admin/users``, ``PATCH /admin/users/{id}``, server-side admin
checks, no self-demotion, disabled accounts, audit records, and ``tradefleet create-admin``."""

from __future__ import annotations

import uuid

from sqlmodel import select
from typer.testing import CliRunner

from helpers import bearer, login
from tradefleet.models import AuditEvent, Role, User

USERS = "/api/v1/admin/users"


def test_traders_and_authors_get_403_on_every_admin_route(app, client, make_user, auth_headers):
    paths = [p for p in app.openapi()["paths"] if p.startswith("/api/v1/admin")]
    assert "/api/v1/admin/users" in paths and "/api/v1/admin/users/{user_id}" in paths
    for role in (Role.trader, Role.author):
        user, _ = make_user(role=role)
        for path, item in app.openapi()["paths"].items():
            if not path.startswith("/api/v1/admin"):
                continue
            for method in item:
                url = path.replace("{user_id}", str(user.id)).replace("{", "").replace("}", "")
                reply = client.request(method.upper(), url, headers=auth_headers(user), json={})
                assert reply.status_code == 403, (role, method, path, reply.text)
                assert reply.json() == {"detail": "admin only"}
        assert client.get(USERS).status_code == 401  # and nobody anonymous


def test_list_users_filters_and_pages(admin_client, make_user):
    make_user(email="alice@example.com")
    make_user(email="bob@example.com", role=Role.author)
    make_user(email="carol@example.org")

    everyone = admin_client.get(USERS).json()
    assert everyone["count"] == 4 and len(everyone["data"]) == 4
    assert set(everyone["data"][0]) == {"id", "email", "role", "is_active", "is_verified", "totp_enabled",
                                        "created_at", "display_name"}
    assert [u["email"] for u in admin_client.get(USERS, params={"q": "EXAMPLE.org"}).json()["data"]] == [
        "carol@example.org"]
    assert [u["email"] for u in admin_client.get(USERS, params={"q": "Alice"}).json()["data"]] == ["alice@example.com"]
    authors = admin_client.get(USERS, params={"role": "author"}).json()
    assert authors["count"] == 1 and authors["data"][0]["email"] == "bob@example.com"
    page = admin_client.get(USERS, params={"limit": 2, "offset": 2}).json()
    assert page["count"] == 4 and len(page["data"]) == 2
    assert admin_client.get(USERS, params={"q": "%"}).json()["count"] == 0  # LIKE wildcards are literal
    bad = admin_client.get(USERS, params={"role": "king", "limit": 0})
    assert bad.status_code == 422
    assert sorted(e["field"] for e in bad.json()["errors"]) == ["query.limit", "query.role"]


def test_change_role_and_audit(admin_client, session, make_user):
    user, _ = make_user()

    reply = admin_client.patch(f"{USERS}/{user.id}", json={"role": "author"})

    assert reply.status_code == 200 and reply.json()["role"] == "author"
    session.expire_all()
    assert session.get(User, user.id).role == Role.author
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "user.role_changed")).all()
    assert len(events) == 1
    assert events[0].actor_id == admin_client.user.id and events[0].target_id == str(user.id)
    assert events[0].detail["from"] == "trader" and events[0].detail["to"] == "author"


def test_admin_cannot_demote_or_disable_themselves(admin_client, session):
    me = admin_client.user.id
    for body in ({"role": "trader"}, {"is_active": False}, {"role": "author", "is_active": True}):
        reply = admin_client.patch(f"{USERS}/{me}", json=body)
        assert reply.status_code == 409
        assert reply.json()["detail"] == "admins cannot demote or disable themselves; ask another admin"
    session.expire_all()
    row = session.get(User, me)
    assert row.role == Role.admin and row.is_active is True
    assert admin_client.patch(f"{USERS}/{me}", json={"role": "admin"}).status_code == 200  # no change is fine


def test_disable_and_enable_a_user(admin_client, client, session, make_user):
    user, password = make_user(email="victim@example.com")
    pair = login(client, "victim@example.com", password).json()

    off = admin_client.patch(f"{USERS}/{user.id}", json={"is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert client.get("/api/v1/users/me", headers=bearer(pair["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    refused = login(client, "victim@example.com", password)
    assert refused.status_code == 403 and refused.json() == {"detail": "account disabled"}

    assert admin_client.patch(f"{USERS}/{user.id}", json={"is_active": True}).json()["is_active"] is True
    assert login(client, "victim@example.com", password).status_code == 200
    actions = [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]
    assert "user.disabled" in actions and "user.enabled" in actions


def test_patch_errors(admin_client, session, make_user):
    user, _ = make_user()
    assert admin_client.patch(f"{USERS}/{uuid.uuid4()}", json={"role": "author"}).json() == {"detail": "user not found"}
    bad = admin_client.patch(f"{USERS}/{user.id}", json={"role": "superuser"})
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["role"]
    assert admin_client.patch(f"{USERS}/not-a-uuid", json={}).status_code == 422
    session.expire_all()
    assert session.get(User, user.id).role == Role.trader


def test_create_admin_command(session, client):
    from tradefleet.cli import app as cli

    runner = CliRunner()
    result = runner.invoke(cli, ["create-admin", "--email", "Root@Example.com"],
                           input="a long admin password\na long admin password\n")
    assert result.exit_code == 0, result.output
    assert "created admin: root@example.com" in result.output
    session.expire_all()
    row = session.exec(select(User).where(User.email == "root@example.com")).one()
    assert row.role == Role.admin and row.is_verified is True
    assert login(client, "root@example.com", "a long admin password").status_code == 200

    # Running it again on the same address is refused: the account exists.
    again = runner.invoke(cli, ["create-admin", "--email", "root@example.com", "--password", "another admin pw"])
    assert again.exit_code == 1 and "--promote-existing" in again.output
    assert login(client, "root@example.com", "another admin pw").status_code == 401

    short = runner.invoke(cli, ["create-admin", "--email", "x@example.com", "--password", "short"])
    assert short.exit_code == 2 and "password" in short.output
    bad_email = runner.invoke(cli, ["create-admin", "--email", "nope", "--password", "long enough pw"])
    assert bad_email.exit_code == 2 and "email" in bad_email.output
    session.expire_all()
    assert session.exec(select(User).where(User.email.in_(["x@example.com", "nope"]))).all() == []


def test_create_admin_promotes_an_existing_account_only_when_told(session, client, make_user, outbox):
    from tradefleet.cli import app as cli
    from tradefleet.models import RecoveryCode

    # Someone registered the operator's address first (unverified), and signed in.
    squatter = client.post("/api/v1/auth/register", json={"email": "ops@example.com", "password": "squatter pw 1"})
    assert squatter.status_code == 201
    tokens = login(client, "ops@example.com", "squatter pw 1").json()
    old_access, old_refresh = tokens["access_token"], tokens["refresh_token"]
    squatter_id = uuid.UUID(squatter.json()["id"])

    runner = CliRunner()
    refused = runner.invoke(cli, ["create-admin", "--email", "OPS@example.com", "--password", "operator pw 12"])
    assert refused.exit_code == 1 and "already has an account" in refused.output
    assert "--promote-existing" in refused.output
    session.expire_all()
    row = session.get(User, squatter_id)
    assert row.role == Role.trader and row.is_verified is False  # nothing changed
    assert login(client, "ops@example.com", "squatter pw 1").status_code == 200
    assert login(client, "ops@example.com", "operator pw 12").status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(old_access)).status_code == 200

    promoted = runner.invoke(cli, ["create-admin", "--email", "ops@example.com", "--password", "operator pw 12",
                                   "--promote-existing"])
    assert promoted.exit_code == 0, promoted.output
    out = promoted.output
    assert f"promoted to admin: ops@example.com ({squatter_id})" in out
    for said in ("role: trader -> admin", "password: replaced", "e-mail: marked verified",
                 "every access and refresh token revoked"):
        assert said in out, out
    session.expire_all()
    row = session.get(User, squatter_id)
    assert row.role == Role.admin and row.is_verified is True and row.totp_enabled is False
    assert session.exec(select(RecoveryCode).where(RecoveryCode.user_id == squatter_id)).all() == []
    # The squatter's sessions and password are dead; the typed password works.
    assert client.get("/api/v1/users/me", headers=bearer(old_access)).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": old_refresh}).status_code == 401
    assert login(client, "ops@example.com", "squatter pw 1").status_code == 401
    assert login(client, "ops@example.com", "operator pw 12").status_code == 200
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "user.promoted_admin")).one()
    assert event.target_id == str(squatter_id)

    # --promote-existing on a new address simply creates the admin.
    fresh = runner.invoke(cli, ["create-admin", "--email", "new-ops@example.com", "--password", "operator pw 34",
                                "--promote-existing"])
    assert fresh.exit_code == 0 and "created admin: new-ops@example.com" in fresh.output


def test_promoting_removes_an_enrolled_authenticator(session, client, make_user, auth_headers):
    import pyotp

    from tradefleet.cli import app as cli
    from tradefleet.security import totp

    user, password = make_user(email="enrolled@example.com")
    headers = auth_headers(user)
    secret = client.post("/api/v1/users/me/2fa/setup", headers=headers, json={"password": password}).json()["secret"]
    code = pyotp.TOTP(secret).at(totp.current_step() * 30)
    assert client.post("/api/v1/users/me/2fa/enable", headers=headers,
                       json={"password": password, "code": code}).status_code == 200
    result = CliRunner().invoke(cli, ["create-admin", "--email", "enrolled@example.com", "--password",
                                      "operator pw 56", "--promote-existing"])
    assert result.exit_code == 0 and "two-factor: removed (was on)" in result.output
    # The operator signs in with the typed password alone, and can enrol their own authenticator.
    reply = login(client, "enrolled@example.com", "operator pw 56").json()
    assert set(reply) >= {"access_token", "refresh_token"}
