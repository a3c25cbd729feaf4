"""Rotating refresh tokens through the API and directly on both stores: the database store (SQLite and
PostgreSQL) and the Redis store. Reuse of a used token revokes its family; logout revokes; a password
change or a disabled account kills access and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
import pytest
from sqlmodel import select

from helpers import bearer, login
from tradefleet.models import RefreshToken
from tradefleet.security.tokens import hash_opaque_token
from tradefleet.services.auth_tokens import (
    DatabaseRefreshStore,
    RedisRefreshStore,
    RefreshTokenError,
    get_refresh_store,
)

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"


@pytest.fixture(params=["database", "redis"])
def store_kind(request, db, settings_env) -> str:
    """Each test runs on the database store (of each database) and on the Redis store."""
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    else:
        settings_env(REDIS_URL=None)
    return request.param


def test_store_is_chosen_by_settings(store_kind, session):
    store = get_refresh_store(session)
    assert isinstance(store, RedisRefreshStore if store_kind == "redis" else DatabaseRefreshStore)


def test_login_returns_a_short_lived_access_token_and_a_refresh_token(client, make_user, store_kind, settings_env):
    settings = settings_env()
    user, password = make_user()
    body = login(client, user.email, password).json()

    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60 == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60 and claims["ver"] == 0
    assert len(body["refresh_token"]) >= 43  # 256 random bits, urlsafe base64


def test_refresh_rotates_and_reuse_revokes_the_family(client, make_user, store_kind):
    user, password = make_user()
    first = login(client, user.email, password).json()
    other_login = login(client, user.email, password).json()  # another device: another family

    second = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200
    third = client.post(REFRESH, json={"refresh_token": second["refresh_token"]}).json()

    # The first token is presented again: stolen. The whole family dies, the newest token included.
    reused = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert "already used" in reused.json()["detail"]
    assert client.post(REFRESH, json={"refresh_token": third["refresh_token"]}).status_code == 401
    # The other sign-in is untouched.
    assert client.post(REFRESH, json={"refresh_token": other_login["refresh_token"]}).status_code == 200


def test_logout_revokes_that_sign_in(client, make_user, store_kind):
    user, password = make_user()
    pair = login(client, user.email, password).json()
    rotated = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).json()

    assert client.post(LOGOUT, json={"refresh_token": rotated["refresh_token"]}).status_code == 204
    assert client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]}).status_code == 401
    assert client.post(LOGOUT, json={"refresh_token": rotated["refresh_token"]}).status_code == 204  # idempotent
    assert client.post(LOGOUT, json={"refresh_token": "never-issued"}).status_code == 204


def test_unknown_or_malformed_refresh_tokens(client, store_kind):
    assert client.post(REFRESH, json={"refresh_token": "x" * 43}).json() == {"detail": "invalid refresh token"}
    reply = client.post(REFRESH, json={})
    assert reply.status_code == 422 and [e["field"] for e in reply.json()["errors"]] == ["refresh_token"]


def test_disabled_user_loses_access_and_refresh(client, session, make_user, store_kind):
    from tradefleet.models import UserAdminUpdate
    from tradefleet.models import Role
    from tradefleet.services.users import admin_update_user

    admin, _ = make_user(role=Role.admin)
    user, password = make_user()
    pair = login(client, user.email, password).json()

    admin_update_user(session=session, admin=admin, user_id=user.id, update=UserAdminUpdate(is_active=False))

    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401
    assert client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert login(client, user.email, password).json() == {"detail": "account disabled"}


def test_store_rotation_is_single_use(store_kind, session, make_user):
    user, _ = make_user()
    store = get_refresh_store(session)
    token = store.issue(user_id=user.id, token_version=user.token_version)

    rotation = store.rotate(token)
    assert rotation.user_id == user.id and rotation.token_version == 0
    with pytest.raises(RefreshTokenError, match="already used"):
        store.rotate(token)
    with pytest.raises(RefreshTokenError, match="revoked"):
        store.rotate(rotation.refresh_token)


def test_store_revoke_user_revokes_every_family(store_kind, session, make_user):
    user, _ = make_user()
    other, _ = make_user()
    store = get_refresh_store(session)
    mine = [store.issue(user_id=user.id, token_version=0) for _ in range(3)]
    theirs = store.issue(user_id=other.id, token_version=0)

    store.revoke_user(user.id)

    for token in mine:
        with pytest.raises(RefreshTokenError):
            store.rotate(token)
    assert store.rotate(theirs).user_id == other.id


def test_database_store_keeps_only_hashes_and_refuses_expired_tokens(session, make_user, settings_env):
    settings_env(REDIS_URL=None)
    user, _ = make_user()
    store = DatabaseRefreshStore(session)
    token = store.issue(user_id=user.id, token_version=0)

    row = session.exec(select(RefreshToken)).one()
    assert row.token_hash == hash_opaque_token(token) and token not in repr(row)
    assert row.expires_at - row.created_at == pytest.approx(timedelta(days=14), abs=timedelta(seconds=5))
    row.expires_at = row.created_at - timedelta(seconds=1)
    session.add(row)
    session.commit()
    with pytest.raises(RefreshTokenError, match="expired"):
        store.rotate(token)


def test_redis_store_keeps_only_hashes_with_a_ttl(redis_url, session, make_user):
    import redis

    user, _ = make_user()
    store = get_refresh_store(session)
    token = store.issue(user_id=user.id, token_version=0)

    client = redis.Redis.from_url(redis_url)
    keys = [k.decode() for k in client.keys("tf:rt:*")]
    assert keys == [f"tf:rt:{hash_opaque_token(token)}"]
    assert 13 * 86400 < client.ttl(keys[0]) <= 14 * 86400
    assert token.encode() not in b"".join(client.dump(k) or b"" for k in client.keys("*"))
    client.close()


def test_access_token_with_an_old_version_is_refused(client, make_user):
    from tradefleet.security.tokens import create_access_token

    user, _ = make_user()
    stale = create_access_token(user.id, token_version=user.token_version - 1)
    assert client.get(ME, headers=bearer(stale)).json() == {"detail": "token revoked; sign in again"}
    assert client.get(ME, headers=bearer(create_access_token(uuid.uuid4()))).status_code == 401


def test_concurrent_rotations_of_one_token_let_exactly_one_through(store_kind, db, make_user):
    """Two requests racing with the same refresh token: one rotation wins, the other is a reuse, and the
    winner's successor dies with the family (a thief racing the owner gains nothing)."""
    import threading

    from sqlmodel import Session

    user, _ = make_user()
    with Session(db) as s:
        token = get_refresh_store(s).issue(user_id=user.id, token_version=0)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def attempt() -> None:
        with Session(db) as s:
            store = get_refresh_store(s)
            barrier.wait()
            try:
                outcomes.append(store.rotate(token))
            except RefreshTokenError as exc:
                outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    wins = [o for o in outcomes if not isinstance(o, Exception)]
    losses = [o for o in outcomes if isinstance(o, RefreshTokenError)]
    assert len(wins) == 1 and len(losses) == 1, outcomes
    assert "already used" in losses[0].detail
    with Session(db) as s, pytest.raises(RefreshTokenError):
        get_refresh_store(s).rotate(wins[0].refresh_token)
