"""The simulator's ASGI app: Binance spot REST paths served from recorded candles.

Routes come from route modules (``tradefleet.sim.public``: market data; ``tradefleet.sim.private``: the
signed account/order endpoints; ``tradefleet.sim.admin``: the ``/sim/accounts`` / ``/sim/faults`` admin
paths). Handlers get the shared :class:`~tradefleet.sim.state.SimState` as ``request.app.state.sim``, raise
:class:`~tradefleet.sim.errors.BinanceAPIError` for Binance-format errors and call
:func:`~tradefleet.sim.public.set_weight` to report their request weight.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradefleet.sim.accounts import SimAccountStore
from tradefleet.sim.clock import SimClock
from tradefleet.sim.data import DEFAULT_DATA_DIR, MarketData, load_market_data
from tradefleet.sim.errors import BinanceAPIError, binance_error_handler
from tradefleet.sim.faults import FaultMiddleware
from tradefleet.sim.state import WEIGHT_SCOPE_KEY, RequestStats, SimState, WeightCounter

ROUTE_MODULES: tuple[str, ...] = ("tradefleet.sim.public", "tradefleet.sim.private", "tradefleet.sim.admin")
"""Modules whose ``ROUTES`` (a list of Starlette routes) make up the app, in order."""


class WeightHeaderMiddleware:
    """Adds ``X-MBX-USED-WEIGHT-1M`` (and ``X-MBX-USED-WEIGHT``) to every HTTP reply, and counts
    the request's path in ``stats`` (unknown paths included: they reached the exchange too).

    The weight is what the handler stored with ``set_weight`` (1 when it stored none). With a
    ``limit``, a Binance path (``/api/``, ``/sapi/``) from a client that has already used ``limit``
    weight in this minute is answered like Binance: HTTP 429 ``{"code": -1003, ...}`` with
    ``Retry-After`` (seconds to the next minute), unserved.
    """

    def __init__(self, app: ASGIApp, counter: WeightCounter, stats: RequestStats | None = None,
                 limit: int | None = None) -> None:
        self.app = app
        self.counter = counter
        self.stats = stats
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.stats is not None:
            self.stats.count_path(scope["path"])
        client = scope.get("client")
        host = client[0] if client else "-"
        path = scope["path"]
        if self.limit is not None and (path.startswith("/api/") or path.startswith("/sapi/")) \
                and self.counter.used(host) >= self.limit:
            body = ('{"code":-1003,"msg":"Too many requests; current limit is %d request weight per 1 MINUTE. '
                    'Please use WebSocket Streams for live updates to avoid polling the API."}' % self.limit).encode()
            retry = str(60 - int(time.time()) % 60).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", retry), (b"x-mbx-used-weight-1m", str(self.counter.used(host)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_weight(message: Message) -> None:
            if message["type"] == "http.response.start":
                used = self.counter.add(host, int(scope.get(WEIGHT_SCOPE_KEY, 1)))
                value = str(used).encode()
                headers = list(message.get("headers", []))
                headers.append((b"x-mbx-used-weight", value))
                headers.append((b"x-mbx-used-weight-1m", value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_weight)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = {"msg": f"Not found: {request.method} {request.url.path}"}
    else:
        body = {"msg": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in ROUTE_MODULES:
        routes.extend(importlib.import_module(name).ROUTES)
    return routes


def create_app(
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    speed: float = 60,
    start_ms: int | None = None,
    clock: SimClock | None = None,
    data: MarketData | None = None,
    accounts: list[dict[str, Any]] | None = None,
    state_file: Path | None = None,
    weight_limit: int | None = None,
    order_limit_10s: int | None = None,
) -> Starlette:
    """The simulator app over the recorded candles of ``data_dir``.

    ``clock`` wins over ``speed``/``start_ms``; otherwise a :class:`SimClock` starting at
    ``start_ms`` (ms, UTC; default: the earliest recorded candle open time) running ``speed`` times
    wall time (0 = frozen). ``data`` lets callers share already loaded candles between apps.
    ``accounts``: account specs (:mod:`tradefleet.sim.accounts`) provisioned at start (replacing
    same-key accounts of ``state_file``); ``state_file``: JSON file the accounts, orders and trades
    are kept in across restarts (none: memory only). ``weight_limit`` (Binance: 6000 per minute per
    IP) and ``order_limit_10s`` (Binance: 100 new orders per 10 s per account) enforce Binance's rate
    limits with its 429 replies (-1003 / -1015); None (default) reports weights without enforcing.
    The state is ``app.state.sim`` (:class:`~tradefleet.sim.state.SimState`). Raises ``FileNotFoundError`` when
    ``data_dir`` holds no recorded candles, ``AccountSpecError`` on a bad account spec.
    """
    market_data = data if data is not None else load_market_data(data_dir)
    if clock is None:
        clock = SimClock(market_data.first_open_ms if start_ms is None else start_ms, speed)
    store = SimAccountStore(state_file)
    for spec in accounts or []:
        store.provision(spec, now_ms=clock.now_ms())
    state = SimState.build(market_data, clock, store)
    state.order_limit_10s = order_limit_10s
    app = Starlette(
        routes=_routes(),
        exception_handlers={BinanceAPIError: binance_error_handler, HTTPException: _http_error},
    )
    app.state.sim = state
    app.add_middleware(FaultMiddleware, faults=state.faults)
    app.add_middleware(WeightHeaderMiddleware, counter=state.weights, stats=state.stats, limit=weight_limit)
    return app
