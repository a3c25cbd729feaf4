"""Secrets never leak, end to end with real processes on PostgreSQL and Redis.

Canary credentials (random strings) are planted as exchange keys: accounts are added through the
API and checked by a real Celery worker against the exchange simulator (a valid key, a key with a
wrong secret, a key that may withdraw), a live run trades with the valid one (with exchange faults
on the order path: a lost reply and a rate limit), the keys are replaced by a failing secret while
the run trades (the check says invalid, the run pauses on the authentication error), it
is killed, and bad requests carrying the canaries are sent (malformed JSON, fields
out of range or of the wrong type, a canary as a password and as an account id).

Then every place a secret could leak is searched for the plaintext of every canary (and for a
16-character piece of each, which catches a truncated leak but not the 4+4-character fingerprint):
the logs of the API (uvicorn, debug level with access log) and of the worker and beat (Celery, debug
level); the test process's own log records and output; every API response body; every run event;
a ``pg_dump`` of the whole database, and ``SELECT *`` of every table with every column as text; and
every key of the Redis database (the Celery broker). Zero hits. The canaries are shown to be in use:
the valid key's check succeeded and the simulator holds orders signed with it.

The simulator's own log is not searched: it is the exchange, which holds the keys by definition.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import subprocess
import time
import urllib.request

import httpx
import redis
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from support.common import free_port, stack_env, wait_for

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack

LIVE_STRATEGIES = REPO_ROOT / "backend" / "tests" / "live" / "strategies"


def _canary(tag: str) -> str:
    return f"canary{tag}{secrets.token_hex(24)}"


class Recorder:
    """Every response body the API gave this test."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        # The reply only: the request is what the test sent (canaries included, on purpose).
        self.bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")


def _hits(haystack: str, needles: dict[str, str]) -> list[str]:
    return [name for name, needle in needles.items() if needle in haystack]


def test_canary_secrets_appear_nowhere(e2e_database, redis_url, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    sim_port, api_port = free_port(), free_port()
    good_key, good_secret = _canary("K1"), _canary("S1")
    bad_key, bad_secret_real, bad_secret_stored = _canary("K2"), _canary("S2"), _canary("X2")
    wd_key, wd_secret = _canary("K3"), _canary("S3")
    replaced_secret = _canary("R1")
    body_secret, password_canary = _canary("B1"), _canary("P1")
    canaries = {"good_key": good_key, "good_secret": good_secret, "bad_key": bad_key,
                "bad_secret_real": bad_secret_real, "bad_secret_stored": bad_secret_stored, "wd_key": wd_key,
                "wd_secret": wd_secret, "replaced_secret": replaced_secret, "body_secret": body_secret,
                "password_canary": password_canary}
    needles = dict(canaries)
    needles.update({f"{k}[6:22]": v[6:22] for k, v in canaries.items()})

    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port,
                    SCHEDULE_INTERVAL_S="0.5", STRATEGIES_DIR=str(LIVE_STRATEGIES),
                    REQUIRE_VERIFIED_EMAIL_FOR_LIVE="false", LIVE_BACKOFF_S="0.05", RECONCILE_INTERVAL_S="2")
    logs = tmp_path / "logs"
    record = Recorder()
    with Stack(env=env, log_dir=logs) as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        sim_url = stack.simulator(port=sim_port, speed=60)
        sim = httpx.Client(base_url=sim_url, timeout=10)
        for key, secret, permissions in ((good_key, good_secret, None), (bad_key, bad_secret_real, None),
                                         (wd_key, wd_secret, {"read": True, "trade": True, "withdraw": True})):
            spec = {"api_key": key, "secret": secret, "balances": {"USDT": "10000"}}
            if permissions:
                spec["permissions"] = permissions
            assert sim.post("/sim/accounts", json=spec).status_code == 201
        # Debug logging everywhere, with uvicorn's access log: the most a server could write.
        stack.spawn("worker", str(BIN / "celery"), "-A", "tradefleet.worker.app", "worker", "-Q",
                    "schedule,evaluate,default,backtests", "--concurrency", "2", "--loglevel", "DEBUG",
                    "-n", "canary@%h")
        stack.spawn("beat", str(BIN / "celery"), "-A", "tradefleet.worker.app", "beat", "--loglevel", "DEBUG",
                    "-s", str(tmp_path / "beat-schedule"))
        stack.spawn("api", str(BIN / "uvicorn"), "tradefleet.api.main:app", "--host", "127.0.0.1",
                    "--port", str(api_port), "--log-level", "debug")
        base = f"http://127.0.0.1:{api_port}"
        stack.wait_http(f"{base}/api/v1/health")
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=15, event_hooks={"response": [record]})

        email, password = "canary@example.com", "correct horse battery"
        assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
        token = api.post("/auth/login", data={"username": email, "password": password}).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"

        # --- accounts and their checks by the worker -----------------------------------------------
        def add(label: str, key: str, secret: str) -> str:
            reply = api.post("/exchange-accounts", json={"exchange": "binance", "label": label, "api_key": key,
                                                         "secret": secret, "sandbox": False})
            assert reply.status_code == 201, reply.text
            return reply.json()["id"]

        def checked(account_id: str) -> dict:
            def done():
                reply = api.get(f"/exchange-accounts/{account_id}").json()
                return reply if reply["check_status"] != "pending" else None
            return wait_for(done, 90, f"the key check of {account_id}", stack)

        good = add("good", good_key, good_secret)
        bad = add("wrong secret", bad_key, bad_secret_stored)
        withdraw = add("can withdraw", wd_key, wd_secret)
        good_result, bad_result, wd_result = checked(good), checked(bad), checked(withdraw)
        assert good_result["check_status"] == "valid", good_result
        assert good_result["fingerprint"] == f"{good_key[:4]}…{good_key[-4:]}"
        assert bad_result["check_status"] == "invalid" and "Signature" in bad_result["check_message"]
        assert wd_result["check_status"] == "invalid" and wd_result["check_message"].startswith("withdrawals are enabled")

        # --- error paths carrying canaries -------------------------------------------------------
        raw = '{"exchange": "binance", "label": "x", "api_key": "%s", "secret": "%s",' % (body_secret, body_secret)
        bad_requests = [
            api.post("/exchange-accounts", content=raw, headers={"Content-Type": "application/json"}),
            api.post("/exchange-accounts", json={"exchange": "kraken", "label": "x", "api_key": body_secret,
                                                 "secret": body_secret}),
            api.post("/exchange-accounts", json={"exchange": "binance", "label": "x" * 101, "api_key": body_secret,
                                                 "secret": body_secret}),
            api.post("/exchange-accounts", json={"exchange": "binance", "label": "x", "api_key": " " + body_secret,
                                                 "secret": body_secret}),
            api.post("/exchange-accounts", json={"exchange": "binance", "label": "x", "api_key": body_secret,
                                                 "secret": body_secret * 10}),
            api.post("/exchange-accounts", json={"exchange": "binance", "label": "x", "api_key": [body_secret],
                                                 "secret": {"v": body_secret}}),
            api.patch(f"/exchange-accounts/{good}", json={"secret": "", "api_key": body_secret}),
            api.post("/runs", json={"strategy": "flip", "params": {}, "exchange": "binance", "symbol": "BTC/USDT",
                                    "timeframe": "1m", "mode": "live", "stake": 100,
                                    "exchange_account_id": body_secret}),
            api.post("/runs", json={"strategy": "flip", "params": {}, "exchange": "binance", "symbol": "BTC/USDT",
                                    "timeframe": "1m", "mode": "live", "stake": 100, "exchange_account_id": bad}),
        ]
        assert [r.status_code for r in bad_requests] == [422] * 9, [r.text for r in bad_requests]
        anonymous = httpx.Client(base_url=f"{base}/api/v1", timeout=10, event_hooks={"response": [record]})
        assert anonymous.post("/auth/login", data={"username": email, "password": password_canary}).status_code == 401
        assert anonymous.post("/auth/register", json={"email": "not-an-email", "password": password_canary}
                              ).status_code == 422

        # --- a live run trading with the canary key, through exchange faults, then killed --------
        def create_run():
            reply = api.post("/runs", json={"strategy": "flip", "params": {}, "exchange": "binance",
                                            "symbol": "BTC/USDT", "timeframe": "1m", "mode": "live", "stake": 1000,
                                            "exchange_account_id": good})
            assert reply.status_code in (201, 503), reply.text  # 503 until the worker loaded the markets
            return reply.json() if reply.status_code == 201 else None

        run = wait_for(create_run, 60, "the market catalog", stack)
        run_id = run["id"]
        for fault in ({"kind": "error", "when": "after", "count": 1, "paths": ["POST /api/v3/order"]},
                      {"kind": "rate_limit", "count": 1, "paths": ["POST /api/v3/order"]}):
            assert sim.post("/sim/faults", json=fault).status_code == 201
        assert api.post(f"/runs/{run_id}/start").json()["status"] == "running"

        def filled_orders():
            orders = api.get(f"/runs/{run_id}/orders").json()
            done = [o for o in orders if o["status"] == "filled"]
            return done if len(done) >= 3 else None

        wait_for(filled_orders, 120, "three filled live orders", stack)
        faults_left = sim.get("/sim/faults").json()["faults"]
        assert faults_left == [], faults_left  # both faults hit the live order path

        # The keys go bad while the run trades: a failing secret replaces the good one. The worker's
        # check says invalid, and the run's next order fails authentication and pauses it.
        reply = api.patch(f"/exchange-accounts/{good}", json={"secret": replaced_secret})
        assert reply.status_code == 200 and reply.json()["check_status"] == "pending"
        replaced = checked(good)
        assert replaced["check_status"] == "invalid" and "Signature" in replaced["check_message"]

        def paused():
            reply = api.get(f"/runs/{run_id}").json()
            return reply if reply["status"] == "paused" else None

        paused_run = wait_for(paused, 90, "the run to pause on the failing key", stack)
        assert "Signature for this request is not valid" in paused_run["status_reason"], paused_run
        killed = api.post(f"/runs/{run_id}/kill")
        assert killed.status_code == 200, killed.text

        def stopped():
            reply = api.get(f"/runs/{run_id}").json()
            return reply if reply["status"] == "stopped" else None

        wait_for(stopped, 60, "the killed run to stop", stack)
        events = api.get(f"/runs/{run_id}/events").json()
        assert events and api.get(f"/runs/{run_id}/fills").status_code == 200

        # The exchange holds the orders that key signed: the canary really was decrypted and used.
        # (urllib, not httpx: httpx logs the URL, and this one, of the exchange's admin side, holds the key)
        with urllib.request.urlopen(f"{sim_url}/sim/accounts/{good_key}", timeout=10) as reply:
            exchange_side = json.loads(reply.read())
        assert len(exchange_side["orders"]) >= 3 and exchange_side["trades"]

        # --- checked again on request; an account deleted ------------------------------------------
        assert api.post(f"/exchange-accounts/{bad}/check").status_code == 202
        assert checked(bad)["check_status"] == "invalid"
        assert api.delete(f"/exchange-accounts/{withdraw}").status_code == 204
        listed = api.get("/exchange-accounts").json()
        assert listed["count"] == 2
        time.sleep(1.0)  # let the last log lines reach the files

    # --- the search --------------------------------------------------------------------------------
    haystacks: dict[str, str] = {}
    for name in ("api", "worker", "beat"):
        haystacks[f"log:{name}"] = (logs / f"{name}.log").read_text(errors="replace")
    assert "keys.check" in haystacks["log:worker"] and "GET /api/v1/exchange-accounts" in haystacks["log:api"]
    captured = capfd.readouterr()
    haystacks["test process: output"] = captured.out + captured.err
    haystacks["test process: log records"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    haystacks["api responses"] = "\n".join(record.bodies)
    assert len(record.bodies) >= 30
    haystacks["run events"] = json.dumps(events)

    url = make_url(e2e_database)
    engine = create_engine(url.set(drivername="postgresql+psycopg"), poolclass=NullPool)
    rows_per_table: dict[str, int] = {}
    with engine.connect() as conn:
        dump = []
        for table in inspect(conn).get_table_names():
            columns = [c["name"] for c in inspect(conn).get_columns(table)]
            select = ", ".join(f'CAST("{c}" AS TEXT)' for c in columns)
            rows_per_table[table] = 0
            for row in conn.execute(text(f'SELECT {select} FROM "{table}"')):
                rows_per_table[table] += 1
                dump.append(f"{table}: " + " | ".join("" if v is None else v for v in row))
        event_rows = conn.execute(text("SELECT message, CAST(data AS TEXT) FROM run_event")).all()
        tokens = conn.execute(text("SELECT api_key_enc, secret_enc FROM exchange_account")).all()
    engine.dispose()
    haystacks["database: SELECT * of every table"] = "\n".join(dump)
    haystacks["database: run_event rows"] = "\n".join(f"{m} {d}" for m, d in event_rows)
    # The dump holds what the test did: the two remaining accounts, the run's orders and events.
    assert rows_per_table["exchange_account"] == 2 and rows_per_table["user"] == 1
    assert rows_per_table["order"] >= 3 and rows_per_table["fill"] >= 3 and rows_per_table["run"] == 1
    assert len(event_rows) >= len(events) > 0 and len(tokens) == 2
    pg_dump = shutil.which("pg_dump")
    if pg_dump:
        plain_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
        haystacks["database: pg_dump"] = subprocess.run([pg_dump, "--dbname", plain_url], capture_output=True,
                                                        text=True, check=True).stdout
        assert "COPY public.exchange_account" in haystacks["database: pg_dump"]

    conn = redis.Redis.from_url(redis_url)
    values = []
    for key in conn.scan_iter(count=500):
        kind = conn.type(key).decode()
        value = {"string": lambda k: conn.get(k), "list": lambda k: conn.lrange(k, 0, -1),
                 "hash": lambda k: conn.hgetall(k), "set": lambda k: conn.smembers(k),
                 "zset": lambda k: conn.zrange(k, 0, -1)}.get(kind, lambda k: b"")(key)
        values.append(f"{key!r} {value!r}")
    conn.close()
    haystacks["redis"] = "\n".join(values)

    found = {where: _hits(hay, needles) for where, hay in haystacks.items()}
    searched = {where: len(hay) for where, hay in haystacks.items()}
    print(f"\ncanary search: {len(needles)} needles in {len(haystacks)} places "
          f"({sum(searched.values()):,} characters): {searched}")
    assert {where: hits for where, hits in found.items() if hits} == {}
    print("canary hits: 0")
