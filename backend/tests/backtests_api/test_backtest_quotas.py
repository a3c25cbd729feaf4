"""Per-user caps of ``POST /api/v1/backtests``: backtests kept (409), queued or running (429 with
``Retry-After``), candles of unstored ranges to download per UTC day (429 until midnight; 422 for a
single range over the cap). Each refusal names its setting and writes nothing (no row, no download
charge, nothing enqueued). Racing requests on PostgreSQL cannot pass a cap. ``backtest.expire``
deletes only finished backtests past ``BACKTEST_RETENTION_DAYS``. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tradefleet.errors import DomainError
from tradefleet.models import Backtest, BacktestCreate, BacktestDownload, BacktestStatus, User
from tradefleet.models._types import utcnow
from tradefleet.services import backtests as service

BACKTESTS = "/api/v1/backtests"
BODY = {"strategy": "sma_cross", "params": {"fast": 5}, "exchange": "binance", "symbol": "BTC/USDT",
        "timeframe": "1h", "start": "2024-02-01T00:00:00Z", "end": "2024-04-01T00:00:00Z", "stake": 10_000}
RANGE_CANDLES = 60 * 24  # 1h candles from 2024-02-01 to 2024-04-01


def state(engine: Engine) -> tuple[int, list[tuple[uuid.UUID, int]]]:
    """(backtest rows, download charges) of the whole database."""
    with Session(engine) as s:
        rows = s.exec(select(func.count()).select_from(Backtest)).one()
        charges = [(d.owner_id, d.candles) for d in s.exec(select(BacktestDownload)).all()]
    return rows, sorted(charges)


def set_status(engine: Engine, backtest_id: str, status: BacktestStatus) -> None:
    with Session(engine) as s:
        row = s.get(Backtest, uuid.UUID(backtest_id))
        row.status = status
        row.finished_at = utcnow() if status in (BacktestStatus.done, BacktestStatus.failed) else None
        s.add(row)
        s.commit()


def test_queued_and_running_are_capped_with_429_and_retry_after(user_client, catalog, queue, btc_1h_stored,
                                                                settings_env, db, make_user, auth_headers, app):
    settings_env(BACKTEST_MAX_ACTIVE_PER_USER=2, BACKTEST_ACTIVE_RETRY_AFTER_S=30)
    first = user_client.post(BACKTESTS, json=BODY)
    second = user_client.post(BACKTESTS, json=BODY)
    assert first.status_code == second.status_code == 202
    set_status(db, second.json()["id"], BacktestStatus.running)  # running counts like queued
    before = state(db)

    refused = user_client.post(BACKTESTS, json=BODY)

    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "30"
    assert "BACKTEST_MAX_ACTIVE_PER_USER" in refused.json()["detail"]
    assert state(db) == before and len(queue.ids) == 2  # nothing stored, nothing enqueued

    # Another trader is not affected by this one's backtests.
    from fastapi.testclient import TestClient

    other, _ = make_user()
    with TestClient(app, headers=auth_headers(other)) as other_client:
        assert other_client.post(BACKTESTS, json=BODY).status_code == 202

    # Once one has finished there is room again.
    set_status(db, first.json()["id"], BacktestStatus.done)
    assert user_client.post(BACKTESTS, json=BODY).status_code == 202


def test_stored_backtests_are_capped_with_409(user_client, catalog, queue, btc_1h_stored, settings_env, db):
    settings_env(BACKTEST_MAX_STORED_PER_USER=3, BACKTEST_MAX_ACTIVE_PER_USER=10)
    ids = [user_client.post(BACKTESTS, json=BODY).json()["id"] for _ in range(3)]
    for backtest_id in ids:
        set_status(db, backtest_id, BacktestStatus.done)  # finished rows count too
    before = state(db)

    refused = user_client.post(BACKTESTS, json=BODY)

    assert refused.status_code == 409, refused.text
    assert "BACKTEST_MAX_STORED_PER_USER" in refused.json()["detail"]
    assert state(db) == before and len(queue.ids) == 3

    assert user_client.delete(f"{BACKTESTS}/{ids[0]}").status_code == 204
    assert user_client.post(BACKTESTS, json=BODY).status_code == 202


def test_candles_to_download_are_charged_per_day_and_capped(user_client, catalog, queue, settings_env, db):
    # Nothing of the range is stored: each request would download its whole range.
    settings_env(BACKTEST_DOWNLOAD_CANDLES_PER_DAY=2 * RANGE_CANDLES + 10, BACKTEST_MAX_ACTIVE_PER_USER=10)
    owner = user_client.user.id
    assert user_client.post(BACKTESTS, json=BODY).status_code == 202
    assert state(db)[1] == [(owner, RANGE_CANDLES)]
    assert user_client.post(BACKTESTS, json=BODY).status_code == 202
    before = state(db)
    assert before[1] == [(owner, 2 * RANGE_CANDLES)]

    refused = user_client.post(BACKTESTS, json=BODY)

    assert refused.status_code == 429, refused.text
    assert "BACKTEST_DOWNLOAD_CANDLES_PER_DAY" in refused.json()["detail"]
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 86_401  # until the next midnight UTC
    assert state(db) == before and len(queue.ids) == 2
    # A short range that fits in what is left still passes.
    short = user_client.post(BACKTESTS, json={**BODY, "end": "2024-02-01T05:00:00Z"})
    assert short.status_code == 202, short.text
    assert state(db)[1] == [(owner, 2 * RANGE_CANDLES + 5)]


def test_one_range_larger_than_the_daily_download_cap_is_a_422_on_start(user_client, catalog, queue, settings_env,
                                                                        db):
    settings_env(BACKTEST_DOWNLOAD_CANDLES_PER_DAY=RANGE_CANDLES - 1)
    refused = user_client.post(BACKTESTS, json=BODY)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["errors"][0]["field"] == "start" and "BACKTEST_DOWNLOAD_CANDLES_PER_DAY" in body["detail"]
    assert state(db) == (0, []) and queue.ids == []


def test_stored_candles_are_not_charged(user_client, catalog, queue, btc_1h_stored, settings_env, db):
    settings_env(BACKTEST_DOWNLOAD_CANDLES_PER_DAY=0)  # downloads off: stored ranges still work
    assert user_client.post(BACKTESTS, json=BODY).status_code == 202
    assert state(db) == (1, [])
    refused = user_client.post(BACKTESTS, json={**BODY, "start": "2023-06-01T00:00:00Z",
                                                "end": "2023-07-01T00:00:00Z"})
    assert refused.status_code == 422 and "BACKTEST_DOWNLOAD_CANDLES_PER_DAY" in refused.json()["detail"]
    assert state(db) == (1, [])


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("cap", ["active", "download"])
def test_racing_requests_cannot_pass_a_cap(cap, catalog, queue, settings_env, db, make_user, request):
    """Twelve requests of one trader released at once: exactly the cap is created."""
    if cap == "active":
        request.getfixturevalue("btc_1h_stored")
        settings_env(BACKTEST_MAX_ACTIVE_PER_USER=3)
        allowed = 3
    else:  # room for two ranges' downloads
        settings_env(BACKTEST_MAX_ACTIVE_PER_USER=50, BACKTEST_DOWNLOAD_CANDLES_PER_DAY=2 * RANGE_CANDLES + 100)
        allowed = 2
    user, _ = make_user()
    owner_id = user.id
    # The bundled strategies become versions on first use: do that once, before the race.
    from tradefleet.services.strategy_catalog import sync_bundled

    with Session(db) as s:
        sync_bundled(session=s)
    threads = 12
    barrier = threading.Barrier(threads)
    outcomes: list[object] = []
    lock = threading.Lock()

    def attempt() -> None:
        with Session(db) as s:
            owner = s.get(User, owner_id)
            barrier.wait()
            try:
                service.create_backtest(session=s, owner=owner, backtest_in=BacktestCreate(**BODY))
                outcome: object = 202
            except DomainError as exc:
                outcome = exc.status_code
            except Exception as exc:  # noqa: BLE001 - recorded: the assertion shows it
                outcome = repr(exc)
        with lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)

    assert sorted(outcomes, key=str) == [202] * allowed + [429] * (threads - allowed)
    rows, charges = state(db)
    assert rows == allowed and len(queue.ids) == allowed
    assert charges == ([] if cap == "active" else [(owner_id, allowed * RANGE_CANDLES)])


def test_expire_deletes_only_finished_backtests_past_retention(session, make_user, settings_env, db):
    from tradefleet.worker.tasks import expire_backtests

    settings_env(BACKTEST_RETENTION_DAYS=90)
    user, _ = make_user()
    now = utcnow()

    def add(status: BacktestStatus, finished_days_ago: float | None) -> uuid.UUID:
        row = Backtest(owner_id=user.id, strategy="sma_cross", params={}, exchange="binance", symbol="BTC/USDT",
                       timeframe="1h", start=now - timedelta(days=200), end=now - timedelta(days=199), stake=100,
                       fee=0.001, status=status, created_at=now - timedelta(days=120),
                       finished_at=None if finished_days_ago is None else now - timedelta(days=finished_days_ago))
        session.add(row)
        session.commit()
        return row.id

    old_done, old_failed = add(BacktestStatus.done, 91), add(BacktestStatus.failed, 100)
    kept = {add(BacktestStatus.done, 89), add(BacktestStatus.queued, None), add(BacktestStatus.running, None)}
    session.add(BacktestDownload(owner_id=user.id, day=(now - timedelta(days=3)).date(), candles=5))
    session.add(BacktestDownload(owner_id=user.id, day=now.date(), candles=7))
    session.commit()

    result = expire_backtests.apply().get()  # the beat task's body, run in this process

    assert result == {"backtests": 2, "download_days": 1}
    session.expire_all()
    assert set(session.exec(select(Backtest.id)).all()) == kept
    assert old_done not in kept and old_failed not in kept
    assert [d.candles for d in session.exec(select(BacktestDownload)).all()] == [7]
