"""Fixtures for the exchange simulator tests: one real uvicorn server per session, a frozen clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import ccxt
import pytest
from sim_helpers import T0, Sim
from support.common import recording

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


# --- the private side: accounts per API key, faults ----------------------------------------


@pytest.fixture()
def make_account(sim: Sim) -> Iterator[Callable[..., tuple[ccxt.binance, str]]]:
    """``make_account(balances={"USDT": 10000}, permissions=None)`` -> (ccxt binance with that
    account's fresh key and secret, api_key). Faults left by the test are cleared afterwards."""
    import httpx

    def make(balances: dict[str, Any] | None = None, permissions: dict[str, bool] | None = None,
             ) -> tuple[ccxt.binance, str]:
        api_key, secret = f"key-{uuid.uuid4().hex}", f"secret-{uuid.uuid4().hex}"
        spec: dict[str, Any] = {"api_key": api_key, "secret": secret, "balances": balances or {"USDT": 10000}}
        if permissions is not None:
            spec["permissions"] = permissions
        reply = httpx.post(f"{sim.base_url}/sim/accounts", json=spec)
        assert reply.status_code == 201, reply.text
        ex = make_exchange("binance", api_base_url=sim.base_url,
                           credentials={"apiKey": api_key, "secret": secret})
        ex.enableRateLimit = False
        return ex, api_key

    yield make
    httpx.delete(f"{sim.base_url}/sim/faults")
