"""Rate limits and lockout, on both storages: process memory and real Redis.

Through the real API: per client IP and per account on the auth routes, 429 with ``Retry-After`` in the
error format, ``X-Forwarded-For`` believed only from a trusted proxy, and the account lock with growing
delays, its e-mail to the owner (over a loopback SMTP server) and its reset on a good login.
"""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tradefleet.api import rate_limits
from tradefleet.security import lockout, ratelimit

API = "/api/v1"
PEER = ("203.0.113.7", 40000)
# The limits live in memory or Redis, not in the database: one database backend is enough here.
ONE_DB = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # an ordinary (untrusted) client address


@pytest.fixture(params=["memory", "redis"])
def storage(request, settings_env):
    """The rate-limit storage under test: ``memory`` (no REDIS_URL) or ``redis`` (TEST_REDIS_URL)."""
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    backend = ratelimit.get_storage()
    assert type(backend).__name__ == ("RedisStorage" if request.param == "redis" else "MemoryStorage")
    return request.param


def _client(app, peer=PEER) -> TestClient:
    return TestClient(app, client=peer, raise_server_exceptions=False)


def _login(c: TestClient, email: str, password: str, **headers):
    return c.post(f"{API}/auth/login", data={"username": email, "password": password}, headers=headers)


def _assert_429(response) -> int:
    assert response.status_code == 429, response.text
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 3600
    body = response.json()
    assert set(body) == {"detail"} and "retry in" in body["detail"]
    return retry


@ONE_DB
def test_login_limit_per_ip(storage, db, app, settings_env):
    settings_env(RATE_LIMIT_LOGIN="3/minute", LOCKOUT_THRESHOLD=100)
    with _client(app) as c:
        for i in range(3):
            assert _login(c, f"nobody{i}@example.org", "wrong-password-1").status_code == 401
        _assert_429(_login(c, "nobody9@example.org", "wrong-password-1"))
    # Another client IP is not limited by the first one's requests.
    with _client(app, ("198.51.100.20", 40000)) as other:
        assert _login(other, "nobody0@example.org", "wrong-password-1").status_code == 401


@ONE_DB
def test_login_limit_per_account_across_ips(storage, db, app, settings_env):
    settings_env(RATE_LIMIT_LOGIN="3/minute", LOCKOUT_THRESHOLD=100)
    for i in range(3):
        with _client(app, (f"198.51.100.{i + 1}", 40000)) as c:
            assert _login(c, "Target@Example.org", "wrong-password-1").status_code == 401
    with _client(app, ("198.51.100.99", 40000)) as c:
        _assert_429(_login(c, "target@example.org", "wrong-password-1"))  # any case: one account


@ONE_DB
def test_forwarded_for_is_believed_only_from_a_trusted_proxy(storage, db, app, settings_env):
    settings_env(RATE_LIMIT_LOGIN="2/minute", LOCKOUT_THRESHOLD=100, TRUSTED_PROXIES="127.0.0.1")
    # Direct client: a forged X-Forwarded-For changes nothing, it is still one IP.
    with _client(app) as c:
        for i in range(2):
            assert _login(c, f"a{i}@example.org", "wrong-password-1",
                          **{"X-Forwarded-For": f"10.9.9.{i}"}).status_code == 401
        _assert_429(_login(c, "a3@example.org", "wrong-password-1", **{"X-Forwarded-For": "10.9.9.77"}))
    # Behind the trusted proxy: each forwarded client has its own counter; the client-written left part
    # of the header is ignored, the proxy-appended right end counts.
    with _client(app, ("127.0.0.1", 40000)) as proxy:
        for i in range(2):
            assert _login(proxy, f"b{i}@example.org", "wrong-password-1",
                          **{"X-Forwarded-For": f"6.6.6.{i}, 192.0.2.10"}).status_code == 401
        _assert_429(_login(proxy, "b3@example.org", "wrong-password-1",
                           **{"X-Forwarded-For": "6.6.6.99, 192.0.2.10"}))
        assert _login(proxy, "b4@example.org", "wrong-password-1",
                      **{"X-Forwarded-For": "192.0.2.11"}).status_code == 401


@pytest.mark.parametrize("path,body", [
    ("/auth/register", {"email": "new@example.org", "password": "long-enough-pass"}),
    ("/auth/password-reset/request", {"email": "someone@example.org"}),
])
@ONE_DB
def test_register_and_reset_are_limited(storage, db, app, settings_env, path, body):
    settings_env(RATE_LIMIT_REGISTER="2/minute", RATE_LIMIT_PASSWORD_RESET="2/minute")
    with _client(app) as c:
        codes = [c.post(f"{API}{path}", json={**body, "email": f"u{i}-{body['email']}"}).status_code
                 for i in range(2)]
        assert all(code < 429 for code in codes), codes
        _assert_429(c.post(f"{API}{path}", json=body))


@ONE_DB
def test_2fa_step_is_limited_per_ip(storage, db, app, settings_env):
    settings_env(RATE_LIMIT_2FA="2/minute")
    with _client(app) as c:
        for _ in range(2):
            response = c.post(f"{API}/auth/login/2fa", json={"mfa_token": "not-a-token", "code": "123456"})
            assert response.status_code == 401
        _assert_429(c.post(f"{API}/auth/login/2fa", json={"mfa_token": "not-a-token", "code": "123456"}))


def test_reusable_dependency_for_webhooks(storage, settings_env):
    settings_env(RATE_LIMIT_WEBHOOK="2/minute")
    app = FastAPI()
    from tradefleet.api.errors import install_error_handlers

    install_error_handlers(app)

    @app.post("/hook", dependencies=[Depends(rate_limits.limit_ip("webhook"))])
    def hook():
        return {"ok": True}

    with _client(app) as c:
        assert [c.post("/hook").status_code for _ in range(2)] == [200, 200]
        _assert_429(c.post("/hook"))


@ONE_DB
def test_limits_can_be_switched_off(storage, db, app, settings_env):
    settings_env(RATE_LIMIT_LOGIN="1/minute", RATE_LIMIT_ENABLED="false", LOCKOUT_THRESHOLD=100)
    with _client(app) as c:
        assert {_login(c, "x@example.org", "wrong-password-1").status_code for _ in range(4)} == {401}


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="unknown rate-limit scope"):
        rate_limits.limit_ip("nope")


# --- lockout -------------------------------------------------------------------------------------


def test_lock_durations_grow_and_are_capped(settings_env):
    settings_env(LOCKOUT_THRESHOLD=5, LOCKOUT_BASE_S=60, LOCKOUT_MAX_S=600)
    assert [lockout.lock_duration(n) for n in (1, 4, 5, 6, 7, 8, 9, 50)] == [0, 0, 60, 120, 240, 480, 600, 600]


@ONE_DB
def test_repeated_failures_lock_the_account_and_notify_its_owner(storage, db, app, make_user, settings_env,
                                                                 smtp_server, outbox):
    settings_env(LOCKOUT_THRESHOLD=3, LOCKOUT_BASE_S=60, LOCKOUT_MAX_S=3600, RATE_LIMIT_LOGIN="100/minute")
    user, password = make_user()
    with _client(app) as c:
        for _ in range(3):
            assert _login(c, user.email, "wrong-password-1").status_code == 401
        # Locked: even the right password is refused, before it is checked.
        retry = _assert_429(_login(c, user.email, password))
        assert 50 <= retry <= 60
        assert "locked" in _login(c, user.email, password).json()["detail"]
    assert 50 <= lockout.locked_for(user.email, PEER[0]) <= 60

    assert [m[0] for m in outbox.of("account_locked")] == [user.email]
    assert outbox.of("account_locked")[0][2]["failures"] == 3
    [mail] = [m for m in smtp_server.messages if user.email in m.envelope_rcpt]
    assert "locked" in mail["Subject"].lower()


@ONE_DB
def test_unknown_email_locks_the_same_way_without_a_mail(storage, db, app, settings_env, outbox):
    settings_env(LOCKOUT_THRESHOLD=2, RATE_LIMIT_LOGIN="100/minute")
    with _client(app) as c:
        for _ in range(2):
            assert _login(c, "ghost@example.org", "wrong-password-1").status_code == 401
        _assert_429(_login(c, "ghost@example.org", "wrong-password-1"))
    assert outbox.of("account_locked") == []


def test_each_further_failure_doubles_the_lock(storage, settings_env):
    settings_env(LOCKOUT_THRESHOLD=2, LOCKOUT_BASE_S=60, LOCKOUT_MAX_S=1000)
    settings_env(LOCKOUT_ACCOUNT_THRESHOLD=100)
    assert [lockout.failed("slow@example.org", "192.0.2.1") for _ in range(5)] == [0, 60, 120, 240, 480]
    assert 470 <= lockout.locked_for("SLOW@example.org", "192.0.2.1") <= 480
    with pytest.raises(ratelimit.RateLimited) as info:
        lockout.check("slow@example.org", "192.0.2.1")
    assert info.value.status_code == 429 and 470 <= info.value.retry_after_s <= 480


@ONE_DB
def test_a_good_login_resets_the_failures(storage, db, app, make_user, settings_env):
    settings_env(LOCKOUT_THRESHOLD=3, RATE_LIMIT_LOGIN="100/minute")
    user, password = make_user()
    with _client(app) as c:
        for _ in range(2):
            assert _login(c, user.email, "wrong-password-1").status_code == 401
        assert _login(c, user.email, password).status_code == 200
        for _ in range(2):  # two more failures: not three in a row, so no lock
            assert _login(c, user.email, "wrong-password-1").status_code == 401
        assert _login(c, user.email, password).status_code == 200
    assert lockout.locked_for(user.email, PEER[0]) == 0


@ONE_DB
def test_password_change_and_2fa_routes_are_limited_per_user(storage, db, app, make_user, auth_headers, settings_env):
    settings_env(RATE_LIMIT_2FA="2/minute", RATE_LIMIT_LOGIN="2/minute")
    user, _ = make_user()
    with _client(app) as c:
        for path, body in [("/users/me/2fa/disable", {"password": "wrong-password-1", "code": "123456"}),
                           ("/users/me/password", {"current_password": "wrong-password-1",
                                                   "new_password": "another-password-1"})]:
            codes = [c.post(f"{API}{path}", json=body, headers=auth_headers(user)).status_code for _ in range(2)]
            assert all(400 <= code < 429 for code in codes), codes
            # From another IP too: the user's own counter is spent.
            with _client(app, ("198.51.100.77", 40000)) as other:
                _assert_429(other.post(f"{API}{path}", json=body, headers=auth_headers(user)))
