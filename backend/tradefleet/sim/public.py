"""Binance spot public market-data endpoints, served from recorded candles on the sim clock.

Every reply follows the Binance spot REST format (sources cited per handler, under
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/). Only candles that have closed
on the sim clock (``open_time + interval_ms <= now_ms``) are ever visible, in klines and tickers.
Fields Binance has but the recordings lack are estimated or zero:
``quoteAssetVolume`` / ``quoteVolume`` = volume * (high + low + close) / 3 per candle,
trade counts 0, trade ids -1, taker-buy volumes 0.
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tradefleet.sim.data import Series
from tradefleet.sim.errors import (
    BinanceAPIError,
    bad_combination,
    illegal_chars,
    invalid_interval,
    invalid_param,
    invalid_symbol,
    mandatory_param,
)
from tradefleet.sim.state import WEIGHT_SCOPE_KEY

if TYPE_CHECKING:
    from tradefleet.sim.state import SimState

KLINES_DEFAULT_LIMIT = 500
KLINES_MAX_LIMIT = 1000
DAY_MS = 86_400_000

RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]

_INT_RANGE = "^[0-9]{1,20}$"


# --- helpers shared with the private router (tradefleet.sim.private) ------------------------------


def sim_state(request: Request) -> SimState:
    """The :class:`~tradefleet.sim.state.SimState` of the app serving ``request``."""
    return request.app.state.sim


def set_weight(request: Request, weight: int) -> None:
    """Record the Binance request weight of this request (reported in ``X-MBX-USED-WEIGHT-1M``)."""
    request.scope[WEIGHT_SCOPE_KEY] = weight


def int_param(request: Request, name: str, default: int | None = None) -> int | None:
    """A non-negative integer query parameter; Binance error -1100 when it is not digits."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise illegal_chars(name, _INT_RANGE)
    return int(raw)


def symbol_param(request: Request, *, required: bool) -> str | None:
    """The ``symbol`` parameter, checked against the simulated markets (-1102 / -1121)."""
    symbol = request.query_params.get("symbol")
    if not symbol:
        if required:
            raise mandatory_param("symbol")
        return None
    if symbol not in sim_state(request).rules:
        raise invalid_symbol()
    return symbol


def symbols_param(request: Request) -> list[str] | None:
    """The ``symbols`` parameter, a JSON array of market ids (``["BTCUSDT","ETHUSDT"]``).

    -1100 when it is not a non-empty JSON array of strings, -1121 when a market is unknown.
    """
    raw = request.query_params.get("symbols")
    if raw is None:
        return None
    try:
        symbols = json.loads(raw)
    except ValueError:
        symbols = None
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
        raise illegal_chars("symbols", '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$')
    rules = sim_state(request).rules
    for s in symbols:
        if s not in rules:
            raise invalid_symbol()
    return list(dict.fromkeys(symbols))


def _selected_symbols(request: Request) -> tuple[list[str], bool]:
    """(markets asked for, whether a single ``symbol`` was given). -1128 when both params are sent."""
    if request.query_params.get("symbol") and request.query_params.get("symbols") is not None:
        raise bad_combination()
    symbol = symbol_param(request, required=False)
    if symbol is not None:
        return [symbol], True
    symbols = symbols_param(request)
    if symbols is not None:
        return symbols, False
    return sorted(sim_state(request).rules), False


def _f8(x: float) -> str:
    text = "%.8f" % x
    return "0.00000000" if text == "-0.00000000" else text


def format_klines(series: Series, lo: int, hi: int) -> str:
    """Rows ``[lo, hi)`` of ``series`` as Binance's klines JSON array (text).

    Row: ``[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteAssetVolume",
    numberOfTrades, "takerBuyBaseVolume", "takerBuyQuoteVolume", "0"]``, numbers as 8-decimal text
    (recorded prices have at most 8 decimals, so the text equals the recorded value),
    ``closeTime = openTime + interval_ms - 1``.
    """
    if hi <= lo:
        return "[]"
    close_off = series.interval_ms - 1
    times = series.open_time[lo:hi].tolist()
    rows = series.ohlcv[lo:hi].tolist()
    parts = [
        '[%d,"%.8f","%.8f","%.8f","%.8f","%.8f",%d,"%.8f",0,"0.00000000","0.00000000","0"]'
        % (t, o, h, l, c, v, t + close_off, v * (h + l + c) / 3.0)
        for t, (o, h, l, c, v) in zip(times, rows)
    ]
    return "[" + ",".join(parts) + "]"


def window_stats(state: SimState, symbol: str, now_ms: int, window_ms: int) -> dict[str, Any] | None:
    """Price statistics of ``symbol`` over the ``window_ms`` ending with its latest closed candle.

    Uses the interval whose last closed candle closes latest (finest on a tie). Returns floats
    ``open, high, low, last, prev_close, volume, quote_volume, last_volume`` and ints
    ``open_time, close_time`` (ms), or ``None`` when no candle of ``symbol`` has closed yet.
    """
    found = state.data.latest_closed(symbol, now_ms)
    if found is None:
        return None
    series, last = found
    close_time = int(series.open_time[last]) + series.interval_ms - 1
    lo = min(last, int(np.searchsorted(series.open_time, close_time + 1 - window_ms, side="left")))
    block = series.ohlcv[lo : last + 1]
    volumes = block[:, 4]
    return {
        "open": float(block[0, 0]),
        "high": float(block[:, 1].max()),
        "low": float(block[:, 2].min()),
        "last": float(block[-1, 3]),
        "prev_close": float(series.ohlcv[lo - 1, 3]) if lo > 0 else float(block[0, 0]),
        "volume": float(volumes.sum()),
        "quote_volume": float((volumes * (block[:, 1] + block[:, 2] + block[:, 3]) / 3.0).sum()),
        "last_volume": float(volumes[-1]),
        "open_time": int(series.open_time[lo]),
        "close_time": close_time,
    }


def _book_qty(state: SimState, symbol: str, last_volume: float) -> str:
    """A plausible top-of-book quantity: 5% of the last candle's volume, on the lot grid, >= one step."""
    step = state.rules[symbol].step
    qty = Decimal(repr(last_volume / 20.0)).quantize(step, rounding=ROUND_DOWN)
    return f"{max(qty, step):.8f}"


def _ticker(state: SimState, symbol: str, now_ms: int, window_ms: int, *, kind: str) -> dict[str, Any]:
    """One ticker dict; ``kind`` is ``"24hr"`` (FULL), ``"rolling"`` or ``"mini"``."""
    st = window_stats(state, symbol, now_ms, window_ms)
    if st is None:  # nothing traded yet: Binance's reply for an idle market
        zero = "0.00000000"
        st_fields = dict(open=zero, high=zero, low=zero, last=zero, prev=zero, vol=zero, qvol=zero, wavg=zero)
        change, pct = zero, "0.000"
        open_time, close_time = now_ms - window_ms, now_ms
        bid = ask = qty = zero
    else:
        change_f = st["last"] - st["open"]
        wavg = st["quote_volume"] / st["volume"] if st["volume"] > 0 else st["last"]
        tick = float(state.rules[symbol].tick)
        st_fields = dict(
            open=_f8(st["open"]),
            high=_f8(st["high"]),
            low=_f8(st["low"]),
            last=_f8(st["last"]),
            prev=_f8(st["prev_close"]),
            vol=_f8(st["volume"]),
            qvol=_f8(st["quote_volume"]),
            wavg=_f8(wavg),
        )
        change = _f8(change_f)
        pct_text = "%.3f" % (100.0 * change_f / st["open"]) if st["open"] else "0.000"
        pct = "0.000" if pct_text == "-0.000" else pct_text
        open_time, close_time = st["open_time"], st["close_time"]
        bid, ask = _f8(max(st["last"] - tick, tick)), _f8(st["last"] + tick)
        qty = _book_qty(state, symbol, st["last_volume"])
    tail = {
        "openTime": open_time,
        "closeTime": close_time,
        "firstId": -1,
        "lastId": -1,
        "count": 0,
    }
    # The three shapes nest: MINI is a subset of the rolling window's fields, which FULL extends.
    mini = {
        "symbol": symbol,
        "openPrice": st_fields["open"],
        "highPrice": st_fields["high"],
        "lowPrice": st_fields["low"],
        "lastPrice": st_fields["last"],
        "volume": st_fields["vol"],
        "quoteVolume": st_fields["qvol"],
        **tail,
    }
    if kind == "mini":
        return mini
    rolling = {"priceChange": change, "priceChangePercent": pct, "weightedAvgPrice": st_fields["wavg"], **mini}
    if kind == "rolling":
        return rolling
    return {**rolling, "prevClosePrice": st_fields["prev"], "lastQty": qty, "bidPrice": bid, "bidQty": qty,
            "askPrice": ask, "askQty": qty}


def _ticker_type(request: Request) -> str:
    kind = request.query_params.get("type", "FULL")
    if kind not in ("FULL", "MINI"):
        raise invalid_param("type")
    return kind


def _multi_weight(n: int, *, single: bool, per_20: int = 2) -> int:
    """Binance ticker weights: 1-20 markets -> per_20, 21-100 -> 40, more or all -> 80."""
    if single or n <= 20:
        return per_20
    return 40 if n <= 100 else 80


# --- endpoints ------------------------------------------------------------------------------------


async def ping(request: Request) -> Response:
    """``GET /api/v3/ping`` -> ``{}`` (general-endpoints#test-connectivity)."""
    set_weight(request, 1)
    return JSONResponse({})


async def server_time(request: Request) -> Response:
    """``GET /api/v3/time`` -> ``{"serverTime": <sim now, ms>}`` (general-endpoints#check-server-time)."""
    set_weight(request, 1)
    return JSONResponse({"serverTime": sim_state(request).clock.now_ms()})


async def exchange_info(request: Request) -> Response:
    """``GET /api/v3/exchangeInfo[?symbol=X | ?symbols=["X","Y"]]`` (general-endpoints#exchange-information).

    ``{"timezone": "UTC", "serverTime", "rateLimits", "exchangeFilters": [], "symbols": [...]}``, one
    entry per simulated market (:meth:`~tradefleet.sim.markets.SymbolRules.exchange_info_entry`).
    Errors: -1121 unknown market, -1128 both ``symbol`` and ``symbols``.
    """
    set_weight(request, 20)
    state = sim_state(request)
    if request.query_params.get("symbol") and request.query_params.get("symbols") is not None:
        raise bad_combination()
    symbol = symbol_param(request, required=False)
    wanted = [symbol] if symbol else symbols_param(request) or sorted(state.rules)
    return JSONResponse(
        {
            "timezone": "UTC",
            "serverTime": state.clock.now_ms(),
            "rateLimits": RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": [state.exchange_info_entries[s] for s in wanted],
        }
    )


async def klines(request: Request) -> Response:
    """``GET /api/v3/klines`` and ``/api/v3/uiKlines`` (market-data-endpoints#klinecandlestick-data).

    Params: ``symbol``, ``interval`` (required); ``startTime``, ``endTime`` (ms); ``limit`` (default
    500, capped at 1000). Reply: array of rows, see :func:`format_klines`, oldest first: with
    ``startTime`` the first ``limit`` candles opening at/after it, else the last ``limit`` opening
    at/before ``endTime`` (or now) -- closed candles only.
    Errors (HTTP 400): -1102 missing param, -1121 unknown market, -1120 interval not recorded for
    that market, -1100 non-integer number, -1130 ``limit=0``, -1023 ``startTime > endTime``.
    """
    set_weight(request, 2)
    state = sim_state(request)
    symbol = symbol_param(request, required=True)
    interval = request.query_params.get("interval")
    if not interval:
        raise mandatory_param("interval")
    assert symbol is not None
    series = state.data.get(symbol, interval)
    if series is None:
        raise invalid_interval()
    state.stats.count_klines(symbol, interval)
    limit = int_param(request, "limit", KLINES_DEFAULT_LIMIT)
    assert limit is not None
    if limit < 1:
        raise invalid_param("limit")
    start = int_param(request, "startTime")
    end = int_param(request, "endTime")
    if start is not None and end is not None and start > end:
        raise BinanceAPIError(-1023, "Start time is greater than end time.")
    lo, hi = series.window(
        now_ms=state.clock.now_ms(),
        limit=min(limit, KLINES_MAX_LIMIT),
        start_ms=start,
        end_ms=end,
    )
    return Response(format_klines(series, lo, hi), media_type="application/json")


async def ticker_24hr(request: Request) -> Response:
    """``GET /api/v3/ticker/24hr[?symbol= | ?symbols=][&type=FULL|MINI]`` (market-data-endpoints#24hr-ticker-price-change-statistics).

    One object for ``symbol``, else an array (all markets when neither is given). FULL fields:
    symbol, priceChange, priceChangePercent, weightedAvgPrice, prevClosePrice, lastPrice, lastQty,
    bidPrice, bidQty, askPrice, askQty, openPrice, highPrice, lowPrice, volume, quoteVolume,
    openTime, closeTime, firstId, lastId, count. Computed from the closed candles of the last 24 h
    (``lastPrice`` = close of the latest closed candle; bid/ask = last -/+ one tick).
    """
    symbols, single = _selected_symbols(request)
    kind = "mini" if _ticker_type(request) == "MINI" else "24hr"
    set_weight(request, _multi_weight(len(symbols), single=single))
    state = sim_state(request)
    now = state.clock.now_ms()
    items = [_ticker(state, s, now, DAY_MS, kind=kind) for s in symbols]
    return JSONResponse(items[0] if single else items)


def _window_size(request: Request) -> int:
    raw = request.query_params.get("windowSize", "1d")
    limits = {"m": (1, 59, 60_000), "h": (1, 23, 3_600_000), "d": (1, 7, DAY_MS)}
    unit = raw[-1:] if raw else ""
    if unit not in limits or not raw[:-1].isdigit():
        raise invalid_param("windowSize")
    lo, hi, ms = limits[unit]
    n = int(raw[:-1])
    if not lo <= n <= hi:
        raise invalid_param("windowSize")
    return n * ms


async def ticker_rolling(request: Request) -> Response:
    """``GET /api/v3/ticker?symbol=|symbols=[&windowSize=1d][&type=FULL|MINI]`` (market-data-endpoints#rolling-window-price-change-statistics).

    Like ``ticker/24hr`` over ``windowSize`` (1m-59m, 1h-23h, 1d-7d), without prevClosePrice,
    lastQty and the book fields. One of ``symbol`` / ``symbols`` is required (-1102).
    """
    if request.query_params.get("symbol") is None and request.query_params.get("symbols") is None:
        raise mandatory_param("symbol")
    symbols, single = _selected_symbols(request)
    kind = "mini" if _ticker_type(request) == "MINI" else "rolling"
    window = _window_size(request)
    set_weight(request, min(4 * len(symbols), 200))
    state = sim_state(request)
    now = state.clock.now_ms()
    items = [_ticker(state, s, now, window, kind=kind) for s in symbols]
    return JSONResponse(items[0] if single else items)


async def ticker_price(request: Request) -> Response:
    """``GET /api/v3/ticker/price`` -> ``{"symbol", "price"}`` or an array (market-data-endpoints#symbol-price-ticker).

    ``price`` = close of the latest closed candle ("0.00000000" before the first one).
    """
    symbols, single = _selected_symbols(request)
    set_weight(request, 2 if single else 4)
    state = sim_state(request)
    now = state.clock.now_ms()
    items = []
    for s in symbols:
        found = state.data.latest_closed(s, now)
        price = 0.0 if found is None else float(found[0].ohlcv[found[1], 3])
        items.append({"symbol": s, "price": _f8(price)})
    return JSONResponse(items[0] if single else items)


async def book_ticker(request: Request) -> Response:
    """``GET /api/v3/ticker/bookTicker`` -> ``{"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}``
    or an array (market-data-endpoints#symbol-order-book-ticker). bid/ask = last -/+ one tick.
    """
    symbols, single = _selected_symbols(request)
    set_weight(request, 2 if single else 4)
    state = sim_state(request)
    now = state.clock.now_ms()
    items = []
    for s in symbols:
        t = _ticker(state, s, now, DAY_MS, kind="24hr")
        items.append(
            {
                "symbol": s,
                "bidPrice": t["bidPrice"],
                "bidQty": t["bidQty"],
                "askPrice": t["askPrice"],
                "askQty": t["askQty"],
            }
        )
    return JSONResponse(items[0] if single else items)


async def sim_status(request: Request) -> Response:
    """``GET /sim/status`` (not a Binance path): the sim clock and the recorded ranges.

    ``{"now_ms", "speed", "start_ms", "symbols": {"BTCUSDT": {"1m": {"first_ms", "last_ms"}}}}``,
    ``first_ms`` / ``last_ms`` being open times of the first / last recorded candle.
    """
    set_weight(request, 0)
    state = sim_state(request)
    return JSONResponse(
        {
            "now_ms": state.clock.now_ms(),
            "speed": state.clock.speed,
            "start_ms": state.clock.start_ms,
            "symbols": {
                symbol: {iv: {"first_ms": s.first_ms, "last_ms": s.last_ms} for iv, s in by_iv.items()}
                for symbol, by_iv in sorted(state.data.series.items())
            },
        }
    )


async def sim_stats(request: Request) -> Response:
    """``GET /sim/stats`` (not a Binance path): requests served since the simulator started.

    ``{"now_ms", "requests": {"/api/v3/klines": 12, ...}, "klines": {"BTCUSDT": {"1m": 12}}}``:
    every HTTP request by path (this one included), and the klines requests that named a recorded
    market and interval (before the other parameters are checked), by symbol and interval.
    """
    set_weight(request, 0)
    state = sim_state(request)
    return JSONResponse({"now_ms": state.clock.now_ms(), **state.stats.snapshot()})


ROUTES: list[Route] = [
    Route("/api/v3/ping", ping, methods=["GET"]),
    Route("/api/v3/time", server_time, methods=["GET"]),
    Route("/api/v3/exchangeInfo", exchange_info, methods=["GET"]),
    Route("/api/v3/klines", klines, methods=["GET"]),
    Route("/api/v3/uiKlines", klines, methods=["GET"]),
    Route("/api/v3/ticker/24hr", ticker_24hr, methods=["GET"]),
    Route("/api/v3/ticker", ticker_rolling, methods=["GET"]),
    Route("/api/v3/ticker/price", ticker_price, methods=["GET"]),
    Route("/api/v3/ticker/bookTicker", book_ticker, methods=["GET"]),
    Route("/sim/status", sim_status, methods=["GET"]),
    Route("/sim/stats", sim_stats, methods=["GET"]),
]
"""The public routes; :func:`tradefleet.sim.app.create_app` mounts them."""
