"""HTTP hardening: one error format, security headers, CORS, body size limit, 500s.

Needs no database except where a route reads one; the app is the real ``create_app()``.
"""

from __future__ import annotations

import json
import logging

import anyio
import pytest
from fastapi.testclient import TestClient

from tradefleet.api.main import create_app

API = "/api/v1"


def _assert_error_format(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) <= {"detail", "errors"}
    return body


def _assert_security_headers(response, *, api: bool = True) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    if api:
        assert headers["content-security-policy"].startswith("default-src 'none'")
    assert len(headers["x-request-id"]) >= 8


@pytest.fixture
def plain_client():
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def test_unknown_route_is_404_in_the_error_format_with_headers(plain_client):
    response = plain_client.get(f"{API}/no-such-route")
    _assert_error_format(response, 404)
    _assert_security_headers(response)
    assert "strict-transport-security" not in response.headers  # not in production


def test_wrong_method_is_405_with_allow(plain_client):
    response = plain_client.delete(f"{API}/strategies")
    _assert_error_format(response, 405)
    assert "GET" in response.headers["allow"]


def test_validation_error_names_the_field_and_echoes_no_input(client):
    response = client.post(f"{API}/auth/register", json={"email": "not-an-email", "password": "hunter2-secret"})
    body = _assert_error_format(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert "email" in fields
    assert "hunter2-secret" not in response.text


def test_malformed_json_is_422_on_body(client):
    response = client.post(f"{API}/auth/register", content=b'{"email": ', headers={"content-type": "application/json"})
    body = _assert_error_format(response, 422)
    assert body["errors"][0]["field"] == "body"


def test_unexpected_exception_is_a_generic_500_with_request_id_and_no_sql(caplog):
    app = create_app()

    @app.get(f"{API}/test-boom")
    def boom():
        raise RuntimeError("SELECT password FROM user WHERE id = 1 -- /srv/secret/path.py")

    # Ahead of the frontend's mount at "/", which would otherwise answer this path with a 404.
    app.router.routes.insert(0, app.router.routes.pop())

    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as c:
        response = c.get(f"{API}/test-boom", headers={"X-Request-ID": "req-abcdef123"})
    body = _assert_error_format(response, 500)
    assert body["detail"] == "internal error (request id req-abcdef123)"
    assert "SELECT" not in response.text and "Traceback" not in response.text and "/srv" not in response.text
    _assert_security_headers(response)
    assert response.headers["x-request-id"] == "req-abcdef123"
    # The trace is in the log, once.
    logged = [r for r in caplog.records if "req-abcdef123" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_a_bad_request_id_is_replaced(plain_client):
    response = plain_client.get(f"{API}/no-such-route", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


def test_body_announced_too_large_is_413(settings_env):
    settings_env(MAX_REQUEST_BYTES=2048)
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        response = c.post(f"{API}/auth/register", content=b"x" * 5000, headers={"content-type": "application/json"})
    body = _assert_error_format(response, 413)
    assert "2048" in body["detail"]
    _assert_security_headers(response)


def test_streamed_body_too_large_is_413_without_content_length(db, settings_env):
    settings_env(MAX_REQUEST_BYTES=2048)

    def chunks():
        for _ in range(10):
            yield b" " * 1000  # JSON whitespace: only the size is wrong

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        response = c.post(f"{API}/auth/register", content=chunks(), headers={"content-type": "application/json"})
    _assert_error_format(response, 413)


def _raw_asgi(app, *, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, dict, bytes]:
    """Drive ``app`` with a hand-made ASGI request (a client that lies about Content-Length)."""
    sent: list[dict] = []
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": f"{API}/auth/register", "raw_path": f"{API}/auth/register".encode(),
             "query_string": b"", "root_path": "", "headers": headers, "client": ("203.0.113.9", 5000),
             "server": ("testserver", 80), "state": {}}

    async def main():
        try:
            await app(scope, receive, send)
        except Exception:  # noqa: BLE001 - the reply is what is checked
            pass

    anyio.run(main)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def test_lying_content_length_is_cut_off_at_the_limit(db, settings_env):
    settings_env(MAX_REQUEST_BYTES=2048)
    status, headers, body = _raw_asgi(create_app(), headers=[(b"content-type", b"application/json"),
                                                            (b"content-length", b"100")],
                                      chunks=[b" " * 1500, b" " * 1500, b" " * 1500])
    assert status == 413
    assert json.loads(body)["detail"].startswith("request body too large")
    assert headers["x-content-type-options"] == "nosniff"


def test_cors_only_from_allowed_origins(settings_env):
    settings_env(ALLOWED_ORIGINS="https://app.example.org,https://admin.example.org")
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = c.options(f"{API}/auth/login", headers={"Origin": "https://app.example.org", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
        assert "access-control-allow-credentials" not in allowed.headers

        denied = c.options(f"{API}/auth/login", headers={"Origin": "https://evil.example.net", **preflight})
        assert denied.status_code == 400
        assert "access-control-allow-origin" not in denied.headers

        simple = c.get(f"{API}/no-such-route", headers={"Origin": "https://evil.example.net"})
        assert "access-control-allow-origin" not in simple.headers


def test_no_cors_by_default(plain_client):
    response = plain_client.get(f"{API}/no-such-route", headers={"Origin": "https://app.example.org"})
    assert "access-control-allow-origin" not in response.headers


def test_hsts_in_production(settings_env):
    # The test baseline's vault public key and TOTP key stay; an API holds no private key.
    settings_env(ENVIRONMENT="production", JWT_SECRET_KEY="p" * 48, VAULT_PRIVATE_KEYS=None,
                 DATABASE_URL="postgresql://tradefleet:s3cr3t-db-pass@127.0.0.1:5432/tradefleet",
                 SMTP_HOST="smtp.mailhost.net", SMTP_USER="mailer", SMTP_PASSWORD="mail-pass-9f8e7d",
                 EMAILS_FROM_EMAIL="noreply@tradefleet.net")
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        response = c.get(f"{API}/no-such-route")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    _assert_security_headers(response)


def test_docs_page_may_load_its_own_scripts_but_not_be_framed(plain_client):
    response = plain_client.get(f"{API}/docs")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
