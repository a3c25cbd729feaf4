"""Fixtures for the exchange simulator tests: one real uvicorn server per session, a frozen clock."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest
from sim_helpers import T0, Sim
from testsupport import recording

from tradefleet.market.exchange import make_exchange
from tradefleet.sim import DEFAULT_DATA_DIR, BackgroundServer, MarketData, SimClock, create_app, load_market_data


@pytest.fixture(scope="session")
def market_data() -> MarketData:
    return load_market_data(DEFAULT_DATA_DIR)


@pytest.fixture(scope="session")
def _server(market_data: MarketData) -> Iterator[Sim]:
    clock = SimClock(T0, speed=0)
    app = create_app(data=market_data, clock=clock)
    seen: list[str] = []

    with BackgroundServer(recording(app, seen)) as server:
        yield Sim(base_url=server.base_url, clock=clock, data=market_data, requests=seen)


@pytest.fixture()
def sim(_server: Sim) -> Iterator[Sim]:
    """The session's simulator with its clock frozen at :data:`T0` and the request log cleared."""
    _server.clock.set_speed(0)
    _server.clock.set(T0)
    _server.requests.clear()
    yield _server
    _server.clock.set_speed(0)
    _server.clock.set(T0)


@pytest.fixture()
def exchange(sim: Sim) -> ccxt.binance:
    """The platform's ccxt binance pointed at the simulator (ccxt's client-side throttle off for speed)."""
    ex = make_exchange("binance", api_base_url=sim.base_url)
    ex.enableRateLimit = False
    return ex
