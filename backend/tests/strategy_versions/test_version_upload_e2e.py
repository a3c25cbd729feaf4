"""End to end with real processes (simulator, uvicorn, a Celery worker on PostgreSQL and Redis): an
author uploads a strategy over HTTP, the worker validates it in the sandbox, an admin approves it, and a
trader finds it in the catalog, backtests it and creates a paper run pinned to it."""

from __future__ import annotations

import subprocess

import httpx
from version_helpers import cross_source
from support.common import free_port, stack_env, wait_for

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack

BTC_1H = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"


def signed_in(base: str, email: str, password: str, *, register: bool = True) -> httpx.Client:
    api = httpx.Client(base_url=f"{base}/api/v1", timeout=20)
    if register:
        assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
    token = api.post("/auth/login", data={"username": email, "password": password}).json()["access_token"]
    api.headers["Authorization"] = f"Bearer {token}"
    return api


def test_upload_review_and_trade_with_a_real_worker(e2e_database, redis_url, tmp_path):
    sim_port, api_port = free_port(), free_port()
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port)
    with Stack(env=env, log_dir=tmp_path / "logs") as stack:
        for args in (["migrate"], ["data", "import", str(BTC_1H)],
                     ["create-admin", "--email", "reviewer@example.com", "--password", "reviewer-password-1"]):
            subprocess.run([str(BIN / "tradefleet"), *args], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                           capture_output=True)
        stack.simulator(port=sim_port, speed=1)
        stack.workers(concurrency=2)  # the tick worker and the backtest worker
        base = stack.api(port=api_port)
        admin = signed_in(base, "reviewer@example.com", "reviewer-password-1", register=False)
        author = signed_in(base, "author@example.com", "author-password-1")
        trader = signed_in(base, "trader@example.com", "trader-password-1")
        author_id = author.get("/users/me").json()["id"]
        assert admin.patch(f"/admin/users/{author_id}", json={"role": "author"}).status_code == 200
        author = signed_in(base, "author@example.com", "author-password-1", register=False)
        assert author.patch("/users/me", json={"display_name": "Ada"}).status_code == 200

        assert trader.post("/strategies/uploads", files={"file": ("x.py", b"X = 1\n")}).status_code == 403
        reply = author.post("/strategies/uploads",
                            files={"file": ("author_cross.py", cross_source().encode(), "text/x-python")})
        assert reply.status_code == 202, reply.text
        version_id = reply.json()["id"]

        def validated():
            body = author.get(f"/strategies/uploads/{version_id}").json()
            return body if body["status"] != "validating" else None

        checked = wait_for(validated, 180, "the validation", stack)
        assert checked["status"] == "pending_review", checked["report"]
        assert [s["name"] for s in checked["report"]["steps"]] == [
            "loads", "name", "definition", "parameters", "backtest", "lookahead"]
        queue = admin.get("/admin/strategy-versions", params={"status": "pending_review"}).json()
        assert [(v["id"], v["author_email"]) for v in queue["data"]] == [(version_id, "author@example.com")]
        assert admin.get(f"/admin/strategy-versions/{version_id}").json()["source"] == cross_source()
        assert trader.get(f"/strategies/uploads/{version_id}/source").status_code == 404
        assert admin.post(f"/admin/strategy-versions/{version_id}/approve").status_code == 200

        entry = {s["name"]: s for s in trader.get("/strategies").json()}["author_cross"]
        assert (entry["version_id"], entry["version"], entry["author"]) == (version_id, 1, "Ada")
        body = {"strategy": "author_cross", "params": {}, "exchange": "binance", "symbol": "BTC/USDT",
                "timeframe": "1h", "start": "2024-02-01T00:00:00Z", "end": "2024-04-01T00:00:00Z", "stake": 10_000}

        def queued():  # 503 until the worker has loaded the market catalog
            reply = trader.post("/backtests", json=body)
            assert reply.status_code in (202, 503), reply.text
            return reply.json() if reply.status_code == 202 else None

        backtest = wait_for(queued, 60, "the market catalog", stack)
        assert backtest["strategy_version_id"] == version_id

        def finished():
            reply = trader.get(f"/backtests/{backtest['id']}").json()
            return reply if reply["status"] in ("done", "failed") else None

        result = wait_for(finished, 180, "the backtest", stack)
        assert result["status"] == "done", result["error"]
        assert result["metrics"]["trades"] >= 5 and result["strategy_version"] == 1
        run = trader.post("/runs", json={"strategy": "author_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                                         "stake": 1000})
        assert run.status_code == 201, run.text
        assert (run.json()["strategy_version_id"], run.json()["strategy_version"]) == (version_id, 1)
        actions = [e["action"] for e in admin.get("/admin/audit", params={"action": "strategy."}).json()["data"]]
        assert sorted(actions) == ["strategy.approved", "strategy.uploaded"]
