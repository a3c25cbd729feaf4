"""Hostile input as an outsider or a signed-in trader sends it: each attempt answers 422 (or 405) naming
the field, and no table changes.

Covered: 2^63 offsets (the audit log's too), dates in year 1 / 9999 with a zone offset (backtests, the
audit search), a lone UTF-16 surrogate in an e-mail on the unauthenticated routes, NUL in a login name
and in labels on PostgreSQL, control and bidi-override characters in labels, strict types and closed
bodies (``"stake": true``, ``"100"``, unknown fields), bad characters in the query string and the path,
wrong methods on API paths (405 with the API's own ``Allow``), and a 500 that leaves a keep-alive
connection usable (a real uvicorn server).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from sqlmodel import SQLModel

from tradefleet.models import Role

API = "/api/v1"
JSON = {"content-type": "application/json"}
PG = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _counts(db) -> dict[str, int]:
    """Rows per table, except the audit log: an admin's refused request is recorded there, by design."""
    with db.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in SQLModel.metadata.sorted_tables if t.name != "audit_event"}


def _refused(response, field: str, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [field], body
    assert body["detail"].startswith(f"{field}: ")
    return body


def _raw_json(text: str) -> bytes:
    """A JSON document written by hand, so escapes such as ``\\ud800`` reach the server as sent."""
    return text.encode()


# --- huge integers and dates -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [2**63, 10**30, 1_000_001])
def test_audit_offset_past_its_bound_is_422(client, make_user, auth_headers, db, value):
    admin, _ = make_user(role=Role.admin)
    before = _counts(db)
    _refused(client.get(f"{API}/admin/audit", params={"offset": value}, headers=auth_headers(admin)), "query.offset")
    assert _counts(db) == before


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                  "1999-12-31T23:00:00Z", "3000-01-01T00:00:00Z"])
def test_audit_dates_out_of_range_are_422(client, make_user, auth_headers, when):
    admin, _ = make_user(role=Role.admin)
    for name in ("since", "until"):
        _refused(client.get(f"{API}/admin/audit", params={name: when}, headers=auth_headers(admin)), f"query.{name}")


@PG
@pytest.mark.parametrize("field", ["start", "end"])
@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01",
                                  "1970-01-01T00:00:00Z", "3000-06-01T00:00:00Z"])
def test_backtest_dates_out_of_range_are_422(client, make_user, auth_headers, db, field, when):
    trader, _ = make_user()
    body = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
            "start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z", field: when}
    before = _counts(db)
    _refused(client.post(f"{API}/backtests", json=body, headers=auth_headers(trader)), field)
    assert _counts(db) == before


# --- characters ---------------------------------------------------------------------------------------


@PG
@pytest.mark.parametrize(("path", "document", "field"), [
    ("/auth/register", '{"email": "a\\ud800b@example.com", "password": "long enough pw"}', "email"),
    ("/auth/register", '{"email": "ab@example.com\\udfff", "password": "long enough pw"}', "email"),
    ("/auth/password-reset/request", '{"email": "\\ud83d@example.com"}', "email"),
    ("/auth/register", '{"email": "a\\u0000b@example.com", "password": "long enough pw"}', "email"),
    ("/auth/verify-email", '{"token": "abc\\u0000def"}', "token"),
    ("/auth/refresh", '{"refresh_token": "\\ud800"}', "refresh_token"),
])
def test_unauthenticated_bodies_with_surrogates_or_nul_are_422(client, db, path, document, field, outbox):
    before = _counts(db)
    _refused(client.post(f"{API}{path}", content=_raw_json(document), headers=JSON), field)
    assert _counts(db) == before
    assert outbox.sent == []


@PG
@pytest.mark.parametrize("username", ["a\x00b@example.com", "a\ud800b@example.com".encode("utf-8", "surrogatepass"),
                                      "bell\x07@example.com"])
def test_login_name_with_nul_surrogate_or_control_is_422(client, db, make_user, username):
    make_user(email="owner@example.com")
    before = _counts(db)
    form = {"username": username, "password": "whatever-password"}
    if isinstance(username, bytes):
        # Form-encode the raw bytes by hand: a lone surrogate in UTF-8 form is not valid UTF-8.
        from urllib.parse import quote_from_bytes

        content = f"username={quote_from_bytes(username)}&password=x".encode()
        response = client.post(f"{API}/auth/login", content=content,
                               headers={"content-type": "application/x-www-form-urlencoded"})
    else:
        response = client.post(f"{API}/auth/login", data=form)
    _refused(response, "username")
    assert _counts(db) == before


LABEL_ATTACKS = ["desk\x00one", "desk\u202eexe.txt", "a\u2066b", "new\nline", "tab\there", "c1\x85", "bell\x07"]


@PG
@pytest.mark.parametrize("label", LABEL_ATTACKS)
def test_labels_with_nul_control_or_bidi_are_422(client, db, make_user, auth_headers, label):
    trader, _ = make_user()
    headers = auth_headers(trader)
    before = _counts(db)
    body = {"exchange": "binance", "label": label, "api_key": "k" * 16, "secret": "s" * 16}
    _refused(client.post(f"{API}/exchange-accounts", json=body, headers=headers), "label")
    _refused(client.patch(f"{API}/users/me", json={"display_name": label}, headers=headers), "display_name")
    assert _counts(db) == before
    assert client.get(f"{API}/users/me", headers=headers).json()["display_name"] is None


@PG
def test_admin_reason_and_strategy_fields_refuse_nul_and_bidi(client, db, make_user, auth_headers):
    admin, _ = make_user(role=Role.admin)
    headers = auth_headers(admin)
    before = _counts(db)
    _refused(client.put(f"{API}/admin/halt", json={"halted": True, "reason": "x\x00"}, headers=headers), "reason")
    _refused(client.put(f"{API}/admin/halt", json={"halted": True, "reason": "x\u202e"}, headers=headers), "reason")
    run = {"strategy": "sma\u202e", "symbol": "BTC/USDT", "timeframe": "1h", "stake": 100}
    _refused(client.post(f"{API}/runs", json=run, headers=headers), "strategy")
    nested = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h", "stake": 100,
              "params": {"fast": "1\x00"}}
    _refused(client.post(f"{API}/runs", json=nested, headers=headers), "params.fast")
    assert _counts(db) == before
    assert client.get(f"{API}/admin/halt", headers=headers).json()["halted"] is False


@pytest.mark.parametrize(("query", "field"), [("skip=1%00", "query.skip"), ("skip=%ED%A0%80", "query.skip"),
                                              ("sk%00ip=1", "query.sk?ip"), ("skip=%1b[2J", "query.skip")])
def test_query_strings_with_nul_surrogates_or_controls_are_422(client, make_user, auth_headers, query, field):
    trader, _ = make_user()
    _refused(client.get(f"{API}/runs?{query}", headers=auth_headers(trader)), field)
    # Unauthenticated routes too: the guard runs before authentication.
    _refused(client.get(f"{API}/runs?{query}"), field)


@pytest.mark.parametrize("segment", ["%00abc", "%ED%A0%80", "ab%7Fc"])
def test_path_parameters_with_bad_characters_are_422(client, make_user, auth_headers, segment):
    trader, _ = make_user()
    _refused(client.get(f"{API}/runs/{segment}", headers=auth_headers(trader)), "path.run_id")


def test_json_nested_too_deep_or_not_utf8_is_422(client, db):
    before = _counts(db)
    deep = "[" * 5000 + "]" * 5000
    _refused(client.post(f"{API}/auth/register", content=deep.encode(), headers=JSON), "body")
    _refused(client.post(f"{API}/auth/register", content=b'{"email": "\xff@x.com"}', headers=JSON), "body")
    long_int = '{"email": "a@example.com", "password": ' + "9" * 5000 + "}"
    _refused(client.post(f"{API}/auth/register", content=long_int.encode(), headers=JSON), "body")
    assert _counts(db) == before


# --- strict types and closed bodies -------------------------------------------------------------------


@PG
@pytest.mark.parametrize("stake", [True, "100", "1e3", None, [100]])
def test_run_stake_must_be_a_json_number(client, db, make_user, auth_headers, stake):
    trader, _ = make_user()
    before = _counts(db)
    body = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h", "stake": stake}
    _refused(client.post(f"{API}/runs", json=body, headers=auth_headers(trader)), "stake")
    assert _counts(db) == before


@PG
def test_bools_and_numbers_are_strict_and_unknown_fields_are_422(client, db, make_user, auth_headers):
    trader, _ = make_user()
    admin, _ = make_user(role=Role.admin)
    t, a = auth_headers(trader), auth_headers(admin)
    before = _counts(db)
    keys = {"exchange": "binance", "label": "desk", "api_key": "k" * 16, "secret": "s" * 16}
    _refused(client.post(f"{API}/exchange-accounts", json={**keys, "sandbox": "yes"}, headers=t), "sandbox")
    _refused(client.post(f"{API}/exchange-accounts", json={**keys, "sandbox": 1}, headers=t), "sandbox")
    _refused(client.post(f"{API}/exchange-accounts", json={**keys, "owner_id": str(admin.id)}, headers=t), "owner_id")
    backtest = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                "start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"}
    _refused(client.post(f"{API}/backtests", json={**backtest, "fee": "0.001"}, headers=t), "fee")
    _refused(client.post(f"{API}/backtests", json={**backtest, "status": "done"}, headers=t), "status")
    _refused(client.post(f"{API}/runs", json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                                              "stake": 100, "status": "running"}, headers=t), "status")
    _refused(client.patch(f"{API}/users/me", json={"role": "admin"}, headers=t), "role")
    _refused(client.put(f"{API}/admin/halt", json={"halted": "true"}, headers=a), "halted")
    _refused(client.patch(f"{API}/admin/users/{trader.id}", json={"is_active": 0}, headers=a), "is_active")
    _refused(client.post(f"{API}/auth/register", json={"email": "new@example.com", "password": "long enough pw",
                                                       "role": "admin"}), "role")
    assert _counts(db) == before
    assert client.get(f"{API}/users/me", headers=t).json()["role"] == "trader"


# --- methods ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/runs", "GET, POST"), ("PUT", "/auth/login", "POST"), ("GET", "/auth/login", "POST"),
    ("PATCH", "/runs/00000000-0000-0000-0000-000000000001/start", "POST"), ("POST", "/users/me", "GET, PATCH"),
])
def test_wrong_methods_on_api_paths_get_the_apis_allow(client, method, path, allow):
    response = client.request(method, f"{API}{path}")
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"detail": "Method Not Allowed"}


def test_unknown_api_paths_are_json_404_never_a_page(client):
    for path in (f"{API}/no-such-thing", f"{API}/index.html", "/api/", "/api/v2/runs"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/json"), path
    # The frontend still answers outside /api.
    assert client.get("/index.html").headers["content-type"].startswith("text/html")


# --- a 500 keeps the connection -------------------------------------------------------------------------


def _serve(app) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return server, thread, sock.getsockname()[1]


def test_a_500_leaves_the_keep_alive_connection_usable(db, app):
    @app.get(f"{API}/test-boom")
    def boom():
        raise RuntimeError("boom")

    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the mount at "/"
    app.state.route_index.build(app.router.routes)
    server, thread, port = _serve(app)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        statuses = []
        sockets = []
        for path in ("/test-boom", "/no-such-route", "/test-boom", "/auth/login"):
            conn.request("GET", f"{API}{path}")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            assert response.getheader("connection") != "close"
            sockets.append(conn.sock)
        assert statuses == [500, 404, 500, 405]
        assert all(s is sockets[0] and s is not None for s in sockets), "the connection was reopened"
        conn.close()

        # One httpx client on one connection: the request after a 500 is answered.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_connections=1)) as client:
            assert client.get(f"{API}/test-boom").status_code == 500
            after = client.get(f"{API}/auth/login")
            assert after.status_code == 405 and after.headers["allow"] == "POST"
            body = json.loads(client.get(f"{API}/test-boom").text)
            assert body["detail"].startswith("internal error")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
