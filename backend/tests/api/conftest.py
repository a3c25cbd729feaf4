"""Fixtures of the API tests: the exchange simulator and the market catalog loaded from it.

``sim_base_url`` starts the simulator (a real uvicorn server on a free port, clock frozen) once per
session. ``catalog`` points ccxt's binance at it through ``EXCHANGE_API_URLS`` and loads the market
catalog with ``refresh_catalog`` into the test's (emptied) database, as the worker does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tradefleet.config import Settings
from tradefleet.market.candles import public_exchange
from tradefleet.market.catalog import refresh_catalog
from tradefleet.sim import DEFAULT_DATA_DIR, BackgroundServer, SimClock, create_app, load_market_data

SIM_T0 = 1_704_240_000_000  # 2024-01-03 00:00 UTC, inside every recorded series


@pytest.fixture(scope="session")
def sim_base_url() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of the session's simulator (frozen clock)."""
    data = load_market_data(DEFAULT_DATA_DIR)
    app = create_app(data=data, clock=SimClock(SIM_T0, speed=0))
    with BackgroundServer(app) as server:
        yield server.base_url


@pytest.fixture
def catalog(db: Engine, sim_base_url: str, settings_env: Callable[..., Settings]) -> Iterator[int]:
    """binance's markets loaded from the simulator through ccxt; returns the number of spot markets."""
    settings_env(EXCHANGE_API_URLS=f"binance={sim_base_url}")
    public_exchange.cache_clear()  # the per-process ccxt object must be built with the new URL
    try:
        with Session(db) as s:
            count = refresh_catalog(session=s, exchange_id="binance")
        assert count > 0
        yield count
    finally:
        public_exchange.cache_clear()
