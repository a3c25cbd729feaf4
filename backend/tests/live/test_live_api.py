"""The live-trading API, on SQLite and PostgreSQL: a live run needs a verified owner and
one of their own, checked exchange accounts on the same exchange (a refused request writes nothing);
paper runs take no account; the kill routes; the admin's run list, stop, kill and global halt, every
one of them refused to non-admins."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func
from sqlmodel import select

from support.live import store_account
from support.common import vault_settings
from tradefleet.models import AuditEvent, Run, RunEvent
from tradefleet.models.exchange_account import KeyCheckStatus


@pytest.fixture
def keys(settings_env):
    settings_env(**vault_settings())


BODY = {"strategy": "sma_cross", "params": {}, "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m",
        "stake": 1000}


def runs_count(session) -> int:
    return session.exec(select(func.count()).select_from(Run)).one()


def field_of(reply) -> str:
    return reply.json()["errors"][0]["field"]


def verify(session, user) -> None:
    user.is_verified = True
    session.add(user)
    session.commit()


def test_live_run_validation(user_client, session, market_catalog, make_user, keys, settings_env):
    user = user_client.user
    account = store_account(session, user.id, "k", "s")
    live = {**BODY, "mode": "live", "exchange_account_id": str(account.id)}
    # Unverified e-mail: 403, nothing written.
    reply = user_client.post("/api/v1/runs", json=live)
    assert reply.status_code == 403 and "verify your e-mail" in reply.json()["detail"]
    verify(session, user)
    # No account, someone else's account, an account whose keys are not checked valid: 422 on the field.
    reply = user_client.post("/api/v1/runs", json={**BODY, "mode": "live"})
    assert reply.status_code == 422 and field_of(reply) == "exchange_account_id"
    other, _ = make_user()
    theirs = store_account(session, other.id, "k2", "s2")
    reply = user_client.post("/api/v1/runs", json={**live, "exchange_account_id": str(theirs.id)})
    assert reply.status_code == 422 and "no such exchange account" in reply.json()["detail"]
    reply = user_client.post("/api/v1/runs", json={**live, "exchange_account_id": str(uuid.uuid4())})
    assert reply.status_code == 422
    pending = store_account(session, user.id, "k3", "s3", status=KeyCheckStatus.invalid)
    reply = user_client.post("/api/v1/runs", json={**live, "exchange_account_id": str(pending.id)})
    assert reply.status_code == 422 and "not checked valid: invalid" in reply.json()["detail"]
    # Paper runs never hold credentials.
    reply = user_client.post("/api/v1/runs", json={**BODY, "mode": "paper", "exchange_account_id": str(account.id)})
    assert reply.status_code == 422 and field_of(reply) == "exchange_account_id"
    assert runs_count(session) == 0
    # The setting can lift the e-mail rule (sign-in and live trading share it).
    created = user_client.post("/api/v1/runs", json=live)
    assert created.status_code == 201, created.text
    assert created.json()["mode"] == "live" and created.json()["exchange_account_id"] == str(account.id)
    user.is_verified = False
    session.add(user)
    session.commit()
    settings_env(REQUIRE_VERIFIED_EMAIL_FOR_LIVE="false")
    assert user_client.post("/api/v1/runs", json=live).status_code == 201


def test_kill_all_and_kill_of_paper_runs(user_client, session, market_catalog):
    ids = [user_client.post("/api/v1/runs", json={**BODY, "mode": "paper"}).json()["id"] for _ in range(3)]
    user_client.post(f"/api/v1/runs/{ids[0]}/start")
    reply = user_client.post("/api/v1/runs/kill-all")
    assert reply.status_code == 200 and reply.json() == {"killed": 3}
    assert {user_client.get(f"/api/v1/runs/{i}").json()["status"] for i in ids} == {"stopped"}
    assert user_client.post("/api/v1/runs/kill-all").json() == {"killed": 0}
    killed = user_client.post(f"/api/v1/runs/{ids[1]}/kill")
    assert killed.status_code == 200 and killed.json()["status"] == "stopped"
    kinds = [e["kind"] for e in user_client.get(f"/api/v1/runs/{ids[1]}/events").json()]
    assert kinds[-1] == "killed"
    assert user_client.post(f"/api/v1/runs/{uuid.uuid4()}/kill").status_code == 404


def test_admin_routes_refuse_traders(user_client):
    run_id = uuid.uuid4()
    for method, path in [("get", "/admin/runs"), ("post", f"/admin/runs/{run_id}/stop"),
                         ("post", f"/admin/runs/{run_id}/kill"), ("get", "/admin/halt"), ("put", "/admin/halt")]:
        kwargs = {"json": {"halted": True}} if method == "put" else {}
        reply = getattr(user_client, method)(f"/api/v1{path}", **kwargs)
        assert reply.status_code == 403, path


def test_admin_lists_stops_kills_and_halts(admin_client, session, market_catalog, make_user, auth_headers, app):
    from fastapi.testclient import TestClient

    trader, _ = make_user(email="trader@example.com")
    with TestClient(app, headers=auth_headers(trader)) as c:
        ids = [c.post("/api/v1/runs", json={**BODY, "mode": "paper"}).json()["id"] for _ in range(2)]
        c.post(f"/api/v1/runs/{ids[0]}/start")
    listing = admin_client.get("/api/v1/admin/runs", params={"user": "trader@"}).json()
    assert listing["count"] == 2 and {r["owner_email"] for r in listing["data"]} == {"trader@example.com"}
    running = admin_client.get("/api/v1/admin/runs", params={"status": "running"}).json()
    assert [r["id"] for r in running["data"]] == [ids[0]]
    assert admin_client.get("/api/v1/admin/runs", params={"status": "nonsense"}).status_code == 422
    stopped = admin_client.post(f"/api/v1/admin/runs/{ids[0]}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    again = admin_client.post(f"/api/v1/admin/runs/{ids[0]}/stop")  # a stopped run: unchanged
    assert again.status_code == 200 and again.json()["stopped_at"] == stopped.json()["stopped_at"]
    killed = admin_client.post(f"/api/v1/admin/runs/{ids[1]}/kill")
    assert killed.status_code == 200 and killed.json()["status_reason"].startswith("killed by admin")
    assert admin_client.post(f"/api/v1/admin/runs/{uuid.uuid4()}/kill").status_code == 404

    assert admin_client.get("/api/v1/admin/halt").json() == {"halted": False, "reason": None, "at": None}
    on = admin_client.put("/api/v1/admin/halt", json={"halted": True, "reason": "exchange incident"})
    assert on.status_code == 200 and on.json()["halted"] is True and on.json()["at"]
    assert admin_client.get("/api/v1/admin/halt").json()["reason"] == "exchange incident"
    bad = admin_client.put("/api/v1/admin/halt", json={"reason": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "halted"
    assert admin_client.get("/api/v1/admin/halt").json()["halted"] is True
    off = admin_client.put("/api/v1/admin/halt", json={"halted": False})
    assert off.json() == {"halted": False, "reason": None, "at": off.json()["at"]}


def test_every_signed_in_user_reads_the_halt_and_only_admins_change_it(admin_client, user_client, client):
    """``GET /trading/halt`` is what traders' pages show: the admin's reason and since when; a trader
    cannot set it (``PUT`` is not a route there, and ``/admin/halt`` is 403); no token, no answer."""
    before = user_client.get("/api/v1/trading/halt").json()
    assert before["halted"] is False and before["reason"] is None
    on = admin_client.put("/api/v1/admin/halt", json={"halted": True, "reason": "exchange incident"}).json()
    seen = user_client.get("/api/v1/trading/halt").json()
    assert seen == {"halted": True, "reason": "exchange incident", "at": on["at"]}
    assert user_client.put("/api/v1/trading/halt", json={"halted": False}).status_code == 405
    assert user_client.put("/api/v1/admin/halt", json={"halted": False}).status_code == 403
    assert client.get("/api/v1/trading/halt").status_code == 401
    assert user_client.get("/api/v1/trading/halt").json()["halted"] is True  # nothing changed it
    admin_client.put("/api/v1/admin/halt", json={"halted": False})
    assert user_client.get("/api/v1/trading/halt").json()["halted"] is False


def test_admin_stop_and_kill_of_a_live_run(admin_client, session, market_catalog, make_user, auth_headers, app,
                                           keys, redis_url):
    """The admin's stop and kill take the run service's path in live mode too: the reason names the
    admin, the audit log the admin as actor; a second stop of the stopped run changes and records
    nothing, a kill of it still marks it killed."""
    from fastapi.testclient import TestClient

    trader, _ = make_user(email="live-trader@example.com", is_verified=True)
    account = store_account(session, trader.id, "k", "s")
    with TestClient(app, headers=auth_headers(trader)) as c:
        created = c.post("/api/v1/runs", json={**BODY, "mode": "live", "exchange_account_id": str(account.id)})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        assert c.post(f"/api/v1/runs/{run_id}/start").json()["status"] == "running"
    admin = admin_client.user
    by = f"admin {admin.email}"

    def recorded(action: str) -> list[AuditEvent]:
        session.expire_all()
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action,
                                                          AuditEvent.target_id == run_id)).all())

    def kinds() -> list[str]:
        return [e.kind for e in session.exec(select(RunEvent).where(RunEvent.run_id == uuid.UUID(run_id))
                                             .order_by(RunEvent.id)).all()]

    stopped = admin_client.post(f"/api/v1/admin/runs/{run_id}/stop")
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["status"] == "stopped" and body["status_reason"] == f"stopped by {by}"
    assert body["owner_email"] == "live-trader@example.com" and body["mode"] == "live"
    [audit] = recorded("run.stopped")
    assert audit.actor_id == admin.id and audit.detail["by"] == by and audit.detail["mode"] == "live"
    assert kinds()[-1] == "stopped"

    before = kinds()
    again = admin_client.post(f"/api/v1/admin/runs/{run_id}/stop")
    assert again.status_code == 200 and again.json()["stopped_at"] == body["stopped_at"]
    assert again.json()["status_reason"] == f"stopped by {by}"
    assert kinds() == before and len(recorded("run.stopped")) == 1

    killed = admin_client.post(f"/api/v1/admin/runs/{run_id}/kill")
    assert killed.status_code == 200 and killed.json()["status_reason"] == f"killed by {by}"
    assert killed.json()["stopped_at"] == body["stopped_at"]
    run = session.get(Run, uuid.UUID(run_id))
    assert run.killed_at is not None
    [audit] = recorded("run.killed")
    assert audit.actor_id == admin.id
    assert {k: v for k, v in audit.detail.items() if k != "request_id"} == {"mode": "live", "by": by}
    assert kinds()[-1] == "killed"
    assert admin_client.post(f"/api/v1/admin/runs/{uuid.uuid4()}/stop").status_code == 404
