"""Safe local defaults, tried as an outsider would: ``make run`` signs with a secret of its own (a token
forged with ``changethis`` is refused), keeps its secrets and database private, believes no
``X-Forwarded-For`` (rotating it does not escape the login limit), a server on example secrets serves
nobody beyond loopback, and a token without ``ver`` is refused."""

from __future__ import annotations

import os
import socket
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from support.common import TEST_JWT_SECRET, free_port

from tradefleet.devstack import Stack


@pytest.fixture
def make_run_env(settings_env, tmp_path):
    """This process prepared as ``tradefleet dev`` prepares itself (fresh ``var/`` and SQLite files under
    ``tmp_path``; no JWT, TOTP or vault setting given); returns the worker's extra environment."""
    from tradefleet.cli.stack import local_secrets_env
    from tradefleet.migrations import upgrade

    settings_env(VAULT_PUBLIC_KEYS=None, VAULT_PRIVATE_KEYS=None, TOTP_ENCRYPTION_KEY=None, JWT_SECRET_KEY=None,
                 DATABASE_URL=f"sqlite:///{tmp_path / 'tradefleet.db'}",
                 CELERY_BROKER_URL=f"sqla+sqlite:///{tmp_path / 'celery-broker.db'}")
    umask = os.umask(0o022)
    try:
        worker_env = local_secrets_env(tmp_path / "var")
    finally:
        os.umask(umask)
    settings_env()
    upgrade()
    return worker_env


def _forged(secret: str, **claims) -> str:
    now = datetime.now(UTC)
    body = {"sub": str(uuid.uuid4()), "iat": now, "exp": now + timedelta(minutes=5), "type": "access",
            "jti": uuid.uuid4().hex, "ver": 0, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def _register(api: httpx.Client, email: str, password: str) -> str:
    assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
    return api.post("/auth/login", data={"username": email, "password": password}).json()["access_token"]


def test_make_run_signs_with_its_own_secret_and_keeps_its_files_private(make_run_env, tmp_path, settings_env):
    from tradefleet.cli.stack import local_secrets_env

    var = tmp_path / "var"
    secret = (var / "jwt-secret.key").read_text().strip()
    assert len(secret) >= 64 and os.environ["JWT_SECRET_KEY"] == secret
    for path in [*var.iterdir(), tmp_path / "tradefleet.db", tmp_path / "celery-broker.db"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(var.stat().st_mode) == 0o700

    with Stack(worker_env=make_run_env, log_dir=tmp_path / "logs") as stack:
        base = stack.api(port=free_port())
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=15)
        token = _register(api, "owner@example.com", "a long enough password")
        me = api.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        # The attacker knows the documented default and the user's id: still 401.
        for guess in ("changethis", TEST_JWT_SECRET):
            forged = _forged(guess, sub=me.json()["id"])
            assert api.get("/users/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    # A second start reuses every secret (sessions and stored keys survive a restart).
    settings_env(JWT_SECRET_KEY=None, VAULT_PUBLIC_KEYS=None, TOTP_ENCRYPTION_KEY=None)
    umask = os.umask(0o022)
    try:
        again = local_secrets_env(var)
    finally:
        os.umask(umask)
    assert os.environ["JWT_SECRET_KEY"] == secret and again == make_run_env


def test_make_run_believes_no_forwarded_for(make_run_env, tmp_path):
    from tradefleet.security.ratelimit import client_ip_of

    assert client_ip_of("127.0.0.1", "203.0.113.9") == "127.0.0.1"  # TRUSTED_PROXIES is empty by default
    with Stack(worker_env=make_run_env, log_dir=tmp_path / "logs") as stack:
        base = stack.api(port=free_port())
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=15)
        # Ten wrong logins per minute per client IP (RATE_LIMIT_LOGIN); each claims another IP and
        # another account, so only the IP limit can stop them.
        statuses = []
        for i in range(12):
            reply = api.post("/auth/login", data={"username": f"guess{i}@example.com", "password": "wrong password"},
                             headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
            statuses.append(reply.status_code)
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429], statuses


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_example_secrets_serve_nobody_beyond_loopback(settings_env):
    from fastapi.testclient import TestClient

    from tradefleet.api.main import create_app

    settings_env(JWT_SECRET_KEY="changethis", ENVIRONMENT="local")
    app = create_app()
    outside = TestClient(app, base_url="http://192.0.2.10:8000")
    for reply in (outside.get("/api/v1/health"), outside.post("/api/v1/auth/login", data={"username": "a@b.co", "password": "x"}),
                  outside.get("/"), outside.get("/api/v1/users/me", headers={"Authorization": f"Bearer {_forged('changethis')}"})):
        assert reply.status_code == 503, reply.text
        assert reply.json()["errors"][0]["field"] == "JWT_SECRET_KEY"
    assert TestClient(app, base_url="http://127.0.0.1:8000").get("/api/v1/openapi.json").status_code == 200
    # A dual-stack socket reports IPv4 clients as mapped IPv6 addresses.
    assert TestClient(app, base_url="http://[::ffff:192.0.2.10]:8000").get("/api/v1/health").status_code == 503
    assert TestClient(app, base_url="http://[::ffff:127.0.0.1]:8000").get("/api/v1/openapi.json").status_code == 200
    assert TestClient(app, base_url="http://[::1]:8000").get("/api/v1/openapi.json").status_code == 200
    # Real secrets: served on any address.
    settings_env(JWT_SECRET_KEY="r" * 48)
    assert TestClient(create_app(), base_url="http://192.0.2.10:8000").get("/api/v1/openapi.json").status_code == 200


def test_a_server_bound_to_every_address_on_example_secrets_refuses_the_outside(settings_env, tmp_path):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to reach the server on")
    settings_env(JWT_SECRET_KEY="changethis", ENVIRONMENT="local", DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    port = free_port()
    with Stack(log_dir=tmp_path / "logs") as stack:
        stack.api(port=port, host="0.0.0.0")  # noqa: S104 - the mistake under test
        reply = httpx.get(f"http://{address}:{port}/api/v1/health", timeout=10)
        assert reply.status_code == 503 and "example secrets (JWT_SECRET_KEY)" in reply.json()["detail"]
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code != 503
    log = (Path(tmp_path) / "logs" / "api.log").read_text()
    assert f"refusing requests on {address}" in log


def test_tokens_without_ver_are_refused(client, make_user, auth_headers):
    user, password = make_user()
    assert client.get("/api/v1/users/me", headers=auth_headers(user)).status_code == 200
    good = _forged(TEST_JWT_SECRET, sub=str(user.id))
    assert client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    for claims in ({"ver": None}, {"ver": "0"}, {"ver": 0.0}, {"ver": True}):
        token = _forged(TEST_JWT_SECRET, sub=str(user.id), **claims)
        assert client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401, claims
    mfa = _forged(TEST_JWT_SECRET, sub=str(user.id), type="mfa", ver=None)
    reply = client.post("/api/v1/auth/login/2fa", json={"mfa_token": mfa, "code": "123456"})
    assert reply.status_code == 401, reply.text
