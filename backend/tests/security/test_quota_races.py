"""Per-user limits under racing requests, on PostgreSQL, through the API.

An attacker fires 120 creations at once, hoping that many of them count the owner's rows before any
commits. Each limit is counted under the owner's lock (``services/quotas.lock_owner``): exactly the limit
is stored, every other request is a 409 naming the limit, nothing beyond it is written. Restarting
stopped runs cannot pass the active-run limit either. Requests run on 120 threads against one
``TestClient`` (its handlers on the server's thread pool, each with its own database connection), with
Redis for live updates and the task broker as in production.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.models import ExchangeAccount, Run, RunStatus

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

RUN = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h", "stake": 1000}
PARALLEL = 120


def _server_threads(client, tokens: int) -> None:
    """Give the in-process server's thread pool ``tokens`` threads. With anyio's default of 40, 120
    requests that each wait for a pooled database connection can hold every thread, while the requests
    holding the connections wait for a thread to close their session: the server stalls until the pool's
    timeout (a limit of the server's thread and connection pools, not of the quota under test)."""
    import anyio.to_thread

    def widen() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = tokens

    client.portal.call(widen)


def _post_all(client, paths_and_bodies: list[tuple[str, dict[str, Any] | None]]) -> list[Any]:
    """POST every (path, body) at once from its own thread; a 503 (busy pool) is retried as a client
    would after its Retry-After."""

    def post(item: tuple[str, dict[str, Any] | None]):
        path, body = item
        for _ in range(20):
            reply = client.post(path, json=body) if body is not None else client.post(path)
            if reply.status_code != 503:
                return reply
            time.sleep(0.2)
        return reply

    _server_threads(client, 2 * len(paths_and_bodies) + 40)
    with ThreadPoolExecutor(max_workers=len(paths_and_bodies)) as pool:
        return list(pool.map(post, paths_and_bodies))


def _count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def _active(engine, owner_id) -> int:
    return _count(engine, Run, Run.owner_id == owner_id,
                  Run.status.in_((RunStatus.created, RunStatus.running, RunStatus.paused)))


def test_120_parallel_run_creations_store_exactly_the_limit(user_client, market_catalog, db, make_user,
                                                              auth_headers, redis_url):
    limit = 50  # the default MAX_RUNS_PER_USER
    # One run first: its creation stores the bundled strategies' versions (a one-time write).
    assert user_client.post("/api/v1/runs", json=RUN).status_code == 201
    replies = _post_all(user_client, [("/api/v1/runs", RUN)] * PARALLEL)
    codes = Counter(r.status_code for r in replies)
    assert codes == {201: limit - 1, 409: PARALLEL - limit + 1}, codes
    for reply in replies:
        if reply.status_code == 409:
            assert "limit 50" in reply.json()["detail"] and "MAX_RUNS_PER_USER" in reply.json()["detail"]
    owner = user_client.user.id
    assert _count(db, Run, Run.owner_id == owner) == _active(db, owner) == limit

    # Another trader is not affected by the first one's limit.
    other, _ = make_user()
    assert user_client.post("/api/v1/runs", json=RUN, headers=auth_headers(other)).status_code == 201


def test_first_run_creations_in_parallel_all_succeed(user_client, market_catalog, db, make_user, auth_headers,
                                                      redis_url):
    """On a database that holds no strategy version yet, the first creations race to record the bundled
    files as versions: one process records them, the others see them, and every creation succeeds."""
    from tradefleet.models import StrategyVersion

    assert _count(db, StrategyVersion) == 0
    users = [make_user()[0] for _ in range(12)]
    _server_threads(user_client, 64)
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        replies = list(pool.map(lambda u: user_client.post("/api/v1/runs", json=RUN, headers=auth_headers(u)),
                                users))
    assert Counter(r.status_code for r in replies) == {201: len(users)}, [r.text for r in replies if r.status_code != 201]
    assert _count(db, Run) == len(users)
    with Session(db) as s:
        versions = s.exec(select(StrategyVersion.name, StrategyVersion.version)).all()
    assert len(versions) == len(set(versions)) and {v for _, v in versions} == {1}


def test_restarting_stopped_runs_in_parallel_cannot_pass_the_active_limit(user_client, market_catalog, db,
                                                                           redis_url, settings_env):
    settings_env(MAX_RUNS_PER_USER=10)
    ids = [user_client.post("/api/v1/runs", json=RUN).json()["id"] for _ in range(10)]
    for run_id in ids[:5]:
        assert user_client.post(f"/api/v1/runs/{run_id}/stop").status_code == 200
    # 5 active, 5 stopped: 5 creations and 5 restarts and 30 more creations race for 5 places.
    race = ([(f"/api/v1/runs/{run_id}/start", None) for run_id in ids[:5]]
            + [("/api/v1/runs", RUN)] * 35)
    replies = _post_all(user_client, race)
    codes = Counter(r.status_code for r in replies)
    assert codes[409] == 35 and codes[200] + codes[201] == 5, codes
    assert all("MAX_RUNS_PER_USER" in r.json()["detail"] for r in replies if r.status_code == 409)
    owner = user_client.user.id
    assert _active(db, owner) == 10
    assert _count(db, Run, Run.owner_id == owner) == 10 + codes[201]


def test_120_parallel_exchange_account_creations_store_exactly_the_limit(user_client, db, redis_url):
    limit = 50  # the default MAX_EXCHANGE_ACCOUNTS_PER_USER
    bodies = [("/api/v1/exchange-accounts",
               {"exchange": "binance", "label": f"k{i}", "api_key": f"key{i:04d}" + "k" * 36,
                "secret": f"sec{i:04d}" + "s" * 36}) for i in range(PARALLEL)]
    replies = _post_all(user_client, bodies)
    codes = Counter(r.status_code for r in replies)
    assert codes == {201: limit, 409: PARALLEL - limit}, codes
    for reply in replies:
        if reply.status_code == 409:
            detail = reply.json()["detail"]
            assert "limit 50" in detail and "MAX_EXCHANGE_ACCOUNTS_PER_USER" in detail
    assert _count(db, ExchangeAccount, ExchangeAccount.owner_id == user_client.user.id) == limit
    # Refused requests stored nothing: the labels kept are exactly those of the 201 replies.
    kept = {r.json()["label"] for r in replies if r.status_code == 201}
    with Session(db) as s:
        labels = set(s.exec(select(ExchangeAccount.label)).all())
    assert labels == kept
