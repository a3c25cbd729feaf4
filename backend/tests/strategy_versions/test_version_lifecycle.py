"""An upload's life over the API with its validation in the sandbox (the task body run here), the
review, the catalog's fields, and pinning: a run or backtest keeps its version whatever is published
after it, the engine executes the pinned code, and only a run that is not running moves."""

from __future__ import annotations

import shutil
import uuid

from conftest import ADMIN_VERSIONS, CHEAT, UPLOADS, cross_source, upload
from sqlalchemy import func
from sqlmodel import select

from tradefleet.config import REPO_ROOT
from tradefleet.engine.evaluate import evaluate_market
from tradefleet.engine.schedule import plan
from tradefleet.models import AuditEvent, Run, RunStatus, StrategyVersion, Trade, VersionStatus

STRATEGIES = "/api/v1/strategies"
RUNS = "/api/v1/runs"
T0 = 1704067200000
MINUTE = 60_000


def steps(report: dict) -> list[tuple[str, bool]]:
    return [(s["name"], s["ok"]) for s in report["steps"]]


def audit(session, action: str) -> list[AuditEvent]:
    session.expire_all()
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_upload_validate_review_and_the_catalog(author_client, trader, admin, validate, session):
    reply = upload(author_client, cross_source())
    version_id = reply.json()["id"]

    assert validate(version_id) == VersionStatus.pending_review
    assert validate(version_id) is None  # a second delivery does nothing

    mine = author_client.get(f"{UPLOADS}/{version_id}").json()
    assert mine["status"] == "pending_review" and mine["name"] == "author_cross" and mine["version"] == 1
    assert steps(mine["report"]) == [("loads", True), ("name", True), ("definition", True),
                                     ("parameters", True), ("backtest", True), ("lookahead", True)]
    assert mine["report"]["ok"] is True
    assert "trades" in mine["report"]["steps"][4]["message"]
    assert mine["manifest"]["name"] == "author_cross" and mine["manifest"]["timeframe"] == "1h"
    assert mine["manifest"]["params_schema"]["properties"]["fast"]["minimum"] == 2
    assert "author_cross" not in {s["name"] for s in trader.get(STRATEGIES).json()}  # not before approval
    assert trader.get(f"{STRATEGIES}/author_cross/versions").status_code == 404

    queue = admin.get(ADMIN_VERSIONS, params={"status": "pending_review"}).json()
    assert [v["id"] for v in queue["data"]] == [version_id]
    approved = admin.post(f"{ADMIN_VERSIONS}/{version_id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["reviewed_by"] == str(admin.user.id)
    again = admin.post(f"{ADMIN_VERSIONS}/{version_id}/approve")
    assert again.status_code == 409

    listed = {s["name"]: s for s in trader.get(STRATEGIES).json()}
    entry = listed["author_cross"]
    assert entry["version_id"] == version_id and entry["version"] == 1 and entry["origin"] == "upload"
    assert entry["author"] == author_client.user.email.split("@")[0]
    assert entry["params_schema"]["properties"]["fast"]["default"] == 10
    assert entry["startup_candles"] == 30 and entry["timeframe"] == "1h"
    bundled = listed["sma_cross"]
    assert bundled["origin"] == "bundled" and bundled["author"] == "Tradefleet" and bundled["version"] == 1
    assert uuid.UUID(bundled["version_id"])
    # The author's display name, once set, is what traders see.
    author_client.patch("/api/v1/users/me", json={"display_name": "Ada Quant"})
    assert {s["name"]: s for s in trader.get(STRATEGIES).json()}["author_cross"]["author"] == "Ada Quant"
    versions = trader.get(f"{STRATEGIES}/author_cross/versions").json()
    assert [(v["id"], v["version"], v["author"]) for v in versions] == [(version_id, 1, "Ada Quant")]
    assert all("source" not in v for v in versions) and "class AuthorCross" not in trader.get(STRATEGIES).text

    approvals = audit(session, "strategy.approved")
    assert len(approvals) == 1 and approvals[0].actor_id == admin.user.id and approvals[0].target_id == version_id
    assert len(audit(session, "strategy.uploaded")) == 1


def test_a_rejected_version_carries_its_reason_and_stays_out(author_client, trader, admin, validate, session):
    version_id = upload(author_client, cross_source()).json()["id"]
    validate(version_id)

    reply = admin.post(f"{ADMIN_VERSIONS}/{version_id}/reject", json={"reason": "  uses a 1h window on 1m data "})

    assert reply.status_code == 200, reply.text
    mine = author_client.get(f"{UPLOADS}/{version_id}").json()
    assert mine["status"] == "rejected" and mine["review_reason"] == "uses a 1h window on 1m data"
    assert "author_cross" not in {s["name"] for s in trader.get(STRATEGIES).json()}
    assert admin.post(f"{ADMIN_VERSIONS}/{version_id}/approve").status_code == 409
    rejections = audit(session, "strategy.rejected")
    assert len(rejections) == 1 and rejections[0].detail["reason"] == "uses a 1h window on 1m data"


def test_failing_uploads_are_invalid_with_the_failed_step(author_client, other_author_client, validate, published):
    cases = [
        ("broken.py", "class Broken(:\n    pass\n", "loads"),
        ("peek_ahead.py", CHEAT, "lookahead"),
        ("sma_cross.py", (REPO_ROOT / "strategies" / "sma_cross.py").read_text(), "name"),  # the platform's
    ]
    for filename, source, failed in cases:
        version_id = upload(author_client, source, filename).json()["id"]
        assert validate(version_id) == VersionStatus.invalid, filename
        mine = author_client.get(f"{UPLOADS}/{version_id}").json()
        assert mine["status"] == "invalid" and mine["version"] is None
        assert mine["report"]["ok"] is False
        assert steps(mine["report"])[-1] == (failed, False), (filename, mine["report"])
        assert mine["report"]["steps"][-1]["message"], filename
    # A name another author holds.
    published(cross_source("SharedName"))
    taken = upload(other_author_client, cross_source("SharedName", revision=1)).json()["id"]
    assert validate(taken) == VersionStatus.invalid
    report = other_author_client.get(f"{UPLOADS}/{taken}").json()["report"]
    assert steps(report)[-1] == ("name", False) and "another author" in report["steps"][-1]["message"]


def test_versions_are_numbered_per_name(author_client, published, trader):
    first = published(cross_source())
    second = published(cross_source(revision=1))

    assert (first["version"], second["version"]) == (1, 2)
    entry = {s["name"]: s for s in trader.get(STRATEGIES).json()}["author_cross"]
    assert entry["version"] == 2 and entry["version_id"] == second["id"]
    assert [v["version"] for v in trader.get(f"{STRATEGIES}/author_cross/versions").json()] == [2, 1]


def test_an_edited_bundled_file_is_a_new_version(trader, settings_env, tmp_path, session):
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "sma_cross.py", folder)
    settings_env(STRATEGIES_DIR=str(folder))
    first = {s["name"]: s for s in trader.get(STRATEGIES).json()}["sma_cross"]
    assert trader.get(STRATEGIES).json()[0]["version_id"] == first["version_id"]  # unchanged: no new version

    path = folder / "sma_cross.py"
    path.write_text(path.read_text() + "\n# edited\n")
    second = {s["name"]: s for s in trader.get(STRATEGIES).json()}["sma_cross"]

    assert (first["version"], second["version"]) == (1, 2) and first["version_id"] != second["version_id"]
    assert session.exec(select(func.count()).select_from(StrategyVersion)).one() == 2
    path.unlink()
    assert trader.get(STRATEGIES).json() == []  # a removed file is withdrawn from the catalog


# --- pinning -------------------------------------------------------------------------------------


def new_run(client, **extra):
    body = {"strategy": "author_cross", "symbol": "BTC/USDT", "timeframe": "1m", "stake": 1000, **extra}
    reply = client.post(RUNS, json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def tick(sim, now_ms: int) -> None:
    sim.clock.set(now_ms)
    for d in plan():
        evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)


def test_runs_keep_their_version_and_the_engine_runs_it(trader, published, market_catalog, session):
    v1 = published(cross_source())
    pinned = new_run(trader, params={"fast": 5, "slow": 20})
    assert (pinned["strategy_version_id"], pinned["strategy_version"]) == (v1["id"], 1)
    trader.post(f"{RUNS}/{pinned['id']}/start")

    v2 = published(cross_source(revision=1, trades=False))  # a later version that never enters
    later = new_run(trader, params={"fast": 5, "slow": 20})
    assert (later["strategy_version_id"], later["strategy_version"]) == (v2["id"], 2)
    trader.post(f"{RUNS}/{later['id']}/start")
    explicit = new_run(trader, params={"fast": 5, "slow": 20}, strategy_version_id=v1["id"])
    assert explicit["strategy_version"] == 1

    for minute in range(25, 300):
        tick(market_catalog, T0 + minute * MINUTE + 1)

    session.expire_all()
    old, new = session.get(Run, uuid.UUID(pinned["id"])), session.get(Run, uuid.UUID(later["id"]))
    assert old.status == new.status == RunStatus.running
    assert str(old.strategy_version_id) == v1["id"] and str(new.strategy_version_id) == v2["id"]
    trades = {run.id: session.exec(select(func.count()).select_from(Trade).where(Trade.run_id == run.id)).one()
              for run in (old, new)}
    assert trades[old.id] >= 3 and trades[new.id] == 0  # same market and parameters, each its own code
    assert trader.get(f"{RUNS}/{pinned['id']}").json()["strategy_version"] == 1


def test_a_stopped_run_moves_and_a_running_one_cannot(trader, published, market_catalog, session,
                                                       make_user, client_for):
    v1 = published(cross_source())
    run = new_run(trader, params={"fast": 3})
    v2 = published(cross_source(revision=1, fast_low=5))  # fast=3 no longer accepted
    move = f"{RUNS}/{run['id']}/strategy-version"
    trader.post(f"{RUNS}/{run['id']}/start")

    running = trader.post(move, json={"version_id": v2["id"]})
    assert running.status_code == 409, running.text
    trader.post(f"{RUNS}/{run['id']}/stop")
    refused = trader.post(move, json={"version_id": v2["id"]})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "params.fast"
    other = {s["name"]: s for s in trader.get(STRATEGIES).json()}["sma_cross"]["version_id"]
    wrong = trader.post(move, json={"version_id": other})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "version_id"
    assert trader.get(f"{RUNS}/{run['id']}").json()["strategy_version_id"] == v1["id"]  # nothing changed

    fine = new_run(trader)
    trader.post(f"{RUNS}/{fine['id']}/stop")
    back = trader.post(f"{RUNS}/{fine['id']}/strategy-version", json={"version_id": v1["id"]})
    assert back.status_code == 200, back.text
    assert (back.json()["strategy_version_id"], back.json()["strategy_version"]) == (v1["id"], 1)
    events = trader.get(f"{RUNS}/{fine['id']}/events").json()
    assert events[-1]["kind"] == "version" and "version 2 to version 1" in events[-1]["message"]
    assert len(audit(session, "run.version_changed")) == 1
    # Another trader cannot move it: 404, nothing changed.
    outsider = client_for(make_user()[0])
    assert outsider.post(f"{RUNS}/{fine['id']}/strategy-version",
                         json={"version_id": v2["id"]}).status_code == 404
    assert trader.get(f"{RUNS}/{fine['id']}").json()["strategy_version"] == 1


def test_a_run_stored_before_versions_is_pinned_on_start(trader, market_catalog, session):
    run = Run(owner_id=trader.user.id, strategy="sma_cross", params={"fast": 10, "slow": 30}, exchange="binance",
              symbol="BTC/USDT", timeframe="1m", mode="paper", stake=1000, cash=1000)
    session.add(run)
    session.commit()
    assert trader.get(f"{RUNS}/{run.id}").json()["strategy_version_id"] is None

    started = trader.post(f"{RUNS}/{run.id}/start")

    assert started.status_code == 200, started.text
    bundled = {s["name"]: s for s in trader.get(STRATEGIES).json()}["sma_cross"]
    assert started.json()["strategy_version_id"] == bundled["version_id"]
    assert started.json()["strategy_version"] == 1


def test_unknown_or_unapproved_versions_are_refused(trader, author_client, validate, market_catalog):
    pending = upload(author_client, cross_source()).json()["id"]
    validate(pending)
    refused = trader.post(RUNS, json={"strategy": "author_cross", "symbol": "BTC/USDT", "timeframe": "1m",
                                      "stake": 1000})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "strategy"
    sma = trader.post(RUNS, json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1m", "stake": 1000,
                                  "strategy_version_id": pending})
    assert sma.status_code == 422 and sma.json()["errors"][0]["field"] == "strategy_version_id"


def test_an_admin_switch_hides_an_uploaded_strategy(trader, admin, published, market_catalog):
    published(cross_source())
    assert admin.patch("/api/v1/admin/strategies/author_cross", json={"enabled": False}).status_code == 200

    assert "author_cross" not in {s["name"] for s in trader.get(STRATEGIES).json()}
    assert trader.get(f"{STRATEGIES}/author_cross/versions").status_code == 404
    refused = trader.post(RUNS, json={"strategy": "author_cross", "symbol": "BTC/USDT", "timeframe": "1m",
                                      "stake": 1000})
    assert refused.status_code == 422 and "disabled" in refused.json()["errors"][0]["message"]
    listed = {s["name"]: s for s in admin.get("/api/v1/admin/strategies").json()["strategies"]}
    assert listed["author_cross"]["enabled"] is False and listed["author_cross"]["origin"] == "upload"
    assert admin.patch("/api/v1/admin/strategies/author_cross", json={"enabled": True}).status_code == 200
    assert "author_cross" in {s["name"] for s in trader.get(STRATEGIES).json()}
