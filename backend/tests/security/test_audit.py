"""The audit log: what is recorded (sign-ins and failures, runs started and stopped,
role changes, every non-GET admin request) with time, actor, IP and user agent; secrets never stored;
and the admin search ``GET /admin/audit``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from tradefleet.models import AuditEvent, Role
from tradefleet.services import audit

API = "/api/v1"
PEER = ("203.0.113.44", 41000)
UA = {"User-Agent": "audit-test-browser/1.0"}


def events(session: Session, action: str | None = None) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(session.exec(query).all())


def test_scrub_redacts_secrets_at_any_depth():
    detail = {"api_key": "AKIA", "nested": {"Password": "x", "list": [{"secret": "s", "ok": 1}]},
              "mfa_token": "t", "code": "123456", "exchange": "binance", "when": datetime(2026, 1, 1, tzinfo=UTC)}
    assert audit.scrub(detail) == {
        "api_key": "[redacted]", "nested": {"Password": "[redacted]", "list": [{"secret": "[redacted]", "ok": 1}]},
        "mfa_token": "[redacted]", "code": "[redacted]", "exchange": "binance", "when": "2026-01-01 00:00:00+00:00"}


def test_record_outside_a_request_has_no_ip(session, make_user):
    user, _ = make_user()
    event = audit.record(session=session, actor=user, action="exchange_key.added", target=("exchange_account", 7),
                         detail={"secret": "do-not-store", "exchange": "binance"})
    [stored] = events(session)
    assert stored.id == event.id and stored.actor_id == user.id and stored.actor_email == user.email
    assert (stored.target_type, stored.target_id) == ("exchange_account", "7")
    assert stored.ip is None and stored.user_agent is None
    assert stored.detail == {"secret": "[redacted]", "exchange": "binance"}
    assert stored.at.tzinfo is not None


def test_sign_ins_and_failures_are_recorded_with_ip_and_user_agent(db, app, session, make_user):
    user, password = make_user()
    with TestClient(app, client=PEER, headers=UA) as c:
        assert c.post(f"{API}/auth/login", data={"username": user.email, "password": "wrong-password-1"}).status_code == 401
        assert c.post(f"{API}/auth/login", data={"username": "Ghost@Example.org", "password": "whatever-123"}).status_code == 401
        assert c.post(f"{API}/auth/login", data={"username": user.email, "password": password}).status_code == 200
    failed = events(session, "auth.login_failed")
    assert [(e.actor_id, e.actor_email) for e in failed] == [(None, user.email), (None, "ghost@example.org")]
    [ok] = events(session, "auth.login")
    assert ok.actor_id == user.id
    for event in failed + [ok]:
        assert event.ip == PEER[0] and event.user_agent == UA["User-Agent"]
        assert "request_id" in event.detail
        assert password not in str(event.detail) and "wrong-password-1" not in str(event.detail)


def test_runs_started_and_stopped_are_recorded(db, app, session, make_user, auth_headers, market_catalog):
    user, _ = make_user()
    with TestClient(app, client=PEER, headers={**UA, **auth_headers(user)}) as c:
        run = c.post(f"{API}/runs", json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                                          "stake": 1000})
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]
        assert c.post(f"{API}/runs/{run_id}/start").status_code == 200
        assert c.post(f"{API}/runs/{run_id}/stop").status_code == 200
    recorded = [(e.action, e.actor_id, e.target_type, e.target_id, e.ip) for e in events(session)
                if e.action.startswith("run.")]
    assert recorded == [("run.started", user.id, "run", run_id, PEER[0]),
                        ("run.stopped", user.id, "run", run_id, PEER[0])]


def test_every_non_get_admin_request_is_recorded(db, app, session, make_user, auth_headers):
    admin, _ = make_user(role=Role.admin)
    trader, _ = make_user()
    with TestClient(app, client=PEER, headers={**UA, **auth_headers(admin)}, raise_server_exceptions=False) as c:
        assert c.get(f"{API}/admin/users").status_code == 200  # reads are not recorded
        assert c.patch(f"{API}/admin/users/{trader.id}", json={"role": "author"}).status_code == 200
        missing = "00000000-0000-4000-8000-000000000000"
        assert c.patch(f"{API}/admin/users/{missing}", json={"role": "author"}).status_code == 404
    requests = events(session, "admin.request")
    assert [(e.detail["method"], e.detail["outcome"], e.detail["status"]) for e in requests] == [
        ("PATCH", "ok", None), ("PATCH", "error", 404)]
    assert all(e.actor_id == admin.id and e.ip == PEER[0] and e.user_agent == UA["User-Agent"] for e in requests)
    assert requests[1].detail["path"] == f"{API}/admin/users/{missing}"
    [change] = events(session, "user.role_changed")
    assert change.actor_id == admin.id and change.target_id == str(trader.id)


def test_a_trader_cannot_read_the_audit_log(user_client):
    response = user_client.get(f"{API}/admin/audit")
    assert response.status_code == 403


def test_admin_search(admin_client, session, make_user):
    alice, _ = make_user(email="alice@example.org")
    bob, _ = make_user(email="bob@example.org")
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for i, (actor, action) in enumerate([(alice, "auth.login"), (bob, "auth.login_failed"), (alice, "run.started"),
                                         (bob, "run.stopped"), (alice, "auth.login")]):
        event = audit.record(session=session, actor=actor, action=action, target=("run", f"r{i}"), commit=False)
        event.at = t0 + timedelta(minutes=i)
    session.commit()

    def search(**params):
        response = admin_client.get(f"{API}/admin/audit", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["count"], [(e["actor_email"], e["action"], e["target"]) for e in body["data"]]

    count, rows = search(actor="alice")
    assert count == 3 and rows[0] == ("alice@example.org", "auth.login", "run:r4")  # newest first
    assert search(actor=str(bob.id))[0] == 2
    assert search(action="auth.")[0] == 3
    assert search(action="auth.login")[0] == 2
    assert search(q="R2")[1] == [("alice@example.org", "run.started", "run:r2")]
    assert search(since="2026-11-01T12:01:00Z", until="2026-11-01T12:03:00Z")[1] == [
        ("alice@example.org", "run.started", "run:r2"), ("bob@example.org", "auth.login_failed", "run:r1")]
    count, page = search(limit=2, offset=1)
    assert count == 5 and [r[2] for r in page] == ["run:r3", "run:r2"]
    first = admin_client.get(f"{API}/admin/audit", params={"limit": 1}).json()["data"][0]
    assert set(first) == {"id", "at", "actor_id", "actor_email", "action", "target", "ip", "user_agent", "detail"}


@pytest.mark.parametrize("params,field", [
    ({"since": "2026-11-01T12:00:00"}, "query.since"),
    ({"limit": 0}, "query.limit"),
    ({"since": "yesterday"}, "query.since"),
])
def test_admin_search_rejects_bad_parameters(admin_client, params, field):
    response = admin_client.get(f"{API}/admin/audit", params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
