"""The simulator behind a real uvicorn server, used through the platform's ccxt binance."""

from __future__ import annotations

import time

import ccxt
import httpx
import pytest
from sim_helpers import DAY, HOUR, MINUTE, T0, Sim, b8, csv_row_at, csv_rows

EXPECTED_RULES = {  # symbol: (price tick, amount step)
    "BTC/USDT": (0.01, 0.00001),
    "ETH/USDT": (0.01, 0.0001),
    "BNB/USDT": (0.1, 0.001),
    "SOL/USDT": (0.01, 0.001),
    "XRP/USDT": (0.0001, 0.1),
    "DOGE/USDT": (0.00001, 1.0),
}


def _ohlcv(values: tuple[str, ...]) -> list[float]:
    return [float(v) for v in values]


# --- markets and time -------------------------------------------------------------------------------


def test_load_markets_symbols_precision_and_fees(sim: Sim, exchange: ccxt.binance) -> None:
    markets = exchange.load_markets()
    assert sim.requests == ["/api/v3/exchangeInfo"]  # spot only, no currencies, no time sync
    assert sorted(markets) == sorted(EXPECTED_RULES)
    for symbol, (tick, step) in EXPECTED_RULES.items():
        m = markets[symbol]
        assert m["id"] == symbol.replace("/", "")
        assert (m["type"], m["spot"], m["active"], m["margin"]) == ("spot", True, True, False)
        assert m["precision"]["price"] == tick and m["precision"]["amount"] == step
        assert m["limits"]["amount"]["min"] == step
        assert m["limits"]["cost"]["min"] == 5
        assert m["taker"] == 0.001 and m["maker"] == 0.001
    assert exchange.price_to_precision("BTC/USDT", 42283.5849) == "42283.58"
    assert exchange.amount_to_precision("DOGE/USDT", 12.9) == "12"


def test_exchange_info_filters_and_symbol_selection(sim: Sim) -> None:
    info = httpx.get(f"{sim.base_url}/api/v3/exchangeInfo", params={"symbol": "XRPUSDT"}).json()
    assert info["timezone"] == "UTC" and info["serverTime"] == T0
    (xrp,) = info["symbols"]
    assert (xrp["status"], xrp["baseAsset"], xrp["quoteAsset"]) == ("TRADING", "XRP", "USDT")
    assert xrp["orderTypes"] == ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"]
    assert xrp["isSpotTradingAllowed"] is True and xrp["permissions"] == ["SPOT"]
    filters = {f["filterType"]: f for f in xrp["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.00010000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.10000000"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    assert "MARKET_LOT_SIZE" in filters
    two = httpx.get(f"{sim.base_url}/api/v3/exchangeInfo", params={"symbols": '["ETHUSDT","BNBUSDT"]'}).json()
    assert [s["symbol"] for s in two["symbols"]] == ["ETHUSDT", "BNBUSDT"]
    bad = httpx.get(f"{sim.base_url}/api/v3/exchangeInfo", params={"symbol": "NOPEUSDT"})
    assert bad.status_code == 400 and bad.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_fetch_time_and_ping_follow_the_sim_clock(sim: Sim, exchange: ccxt.binance) -> None:
    assert exchange.fetch_time() == T0
    sim.clock.advance(90_000)
    assert exchange.fetch_time() == T0 + 90_000
    assert exchange.public_get_ping() == {}


# --- OHLCV ---------------------------------------------------------------------------------------------


def test_fetch_ohlcv_equals_recorded_rows(sim: Sim, exchange: ccxt.binance) -> None:
    sim.clock.set(T0 + 5 * DAY)
    for symbol, interval in [("BTC/USDT", "1m"), ("BNB/USDT", "1m"), ("DOGE/USDT", "5m"), ("XRP/USDT", "1h")]:
        candles = exchange.fetch_ohlcv(symbol, interval, limit=50)
        assert len(candles) == 50
        mid = symbol.replace("/", "")
        for ts, *values in candles:
            assert values == _ohlcv(csv_row_at(mid, interval, ts))


def test_klines_raw_rows_are_binance_format(sim: Sim) -> None:
    rows = httpx.get(
        f"{sim.base_url}/api/v3/klines",
        params={"symbol": "ETHUSDT", "interval": "5m", "startTime": T0 - HOUR, "limit": 3},
    ).json()
    assert [r[0] for r in rows] == [T0 - HOUR, T0 - HOUR + 300_000, T0 - HOUR + 600_000]
    for r in rows:
        assert len(r) == 12
        assert r[6] == r[0] + 300_000 - 1
        assert r[1:6] == [b8(v) for v in csv_row_at("ETHUSDT", "5m", r[0])]
        assert all(isinstance(r[i], str) for i in (1, 2, 3, 4, 5, 7, 9, 10, 11)) and isinstance(r[8], int)
    ui = httpx.get(
        f"{sim.base_url}/api/v3/uiKlines",
        params={"symbol": "ETHUSDT", "interval": "5m", "startTime": T0 - HOUR, "limit": 3},
    ).json()
    assert ui == rows


def test_only_closed_candles_are_ever_served(sim: Sim, exchange: ccxt.binance) -> None:
    for now in [T0, T0 + 1, T0 + 59_999, T0 + 60_000, T0 + 299_999, T0 + 300_000, T0 + 3 * HOUR + 17]:
        sim.clock.set(now)
        for interval, ms in [("1m", MINUTE), ("5m", 5 * MINUTE), ("1h", HOUR)]:
            latest = exchange.fetch_ohlcv("BTC/USDT", interval, limit=5)
            assert latest[-1][0] + ms <= now < latest[-1][0] + 2 * ms  # the newest closed one, no more
            future = exchange.fetch_ohlcv("BTC/USDT", interval, since=now - ms + 1, limit=5)
            assert future == []


def test_frozen_clock_and_explicit_advance_reveal_exactly_the_expected_candles(
    sim: Sim, exchange: ccxt.binance
) -> None:
    sim.clock.set(T0 + 59_999)  # the candle opening at T0 is still open
    before = exchange.fetch_ohlcv("ETH/USDT", "1m", since=T0 - 10 * MINUTE)
    assert [c[0] for c in before] == [T0 - (10 - i) * MINUTE for i in range(10)]
    time.sleep(0.05)  # frozen: wall time does not move it
    assert exchange.fetch_ohlcv("ETH/USDT", "1m", since=T0 - 10 * MINUTE) == before
    sim.clock.advance(1)  # T0 + 60_000: exactly one more 1m candle
    after = exchange.fetch_ohlcv("ETH/USDT", "1m", since=T0 - 10 * MINUTE)
    assert after[:-1] == before and after[-1][0] == T0
    assert after[-1][1:] == _ohlcv(csv_row_at("ETHUSDT", "1m", T0))
    sim.clock.advance(4 * MINUTE)  # T0 + 5 min: four more 1m candles and the first 5m candle of T0
    assert [c[0] for c in exchange.fetch_ohlcv("ETH/USDT", "1m", since=T0)] == [T0 + i * MINUTE for i in range(5)]
    assert exchange.fetch_ohlcv("ETH/USDT", "5m", limit=1)[0][0] == T0
    assert exchange.fetch_ohlcv("ETH/USDT", "1h", limit=1)[0][0] == T0 - HOUR


def test_running_clock_moves_speed_times_faster(sim: Sim, exchange: ccxt.binance) -> None:
    sim.clock.set_speed(600)  # 10 sim minutes per wall second
    start = exchange.fetch_time()
    time.sleep(0.3)
    elapsed = exchange.fetch_time() - start
    assert 150_000 <= elapsed <= 600_000  # ~180 s of sim time (generous for a loaded machine)
    assert httpx.get(f"{sim.base_url}/sim/status").json()["speed"] == 600


def test_since_limit_pagination_walks_the_recording(sim: Sim, exchange: ccxt.binance) -> None:
    sim.clock.set(T0 + DAY)
    since, got = T0, []
    while True:
        page = exchange.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=400)
        if not page:
            break
        got.extend(page)
        since = page[-1][0] + MINUTE
    assert len(got) == 1440  # the whole closed day, no gaps or duplicates
    assert [c[0] for c in got] == [T0 + i * MINUTE for i in range(1440)]
    assert got[777][1:] == _ohlcv(csv_row_at("BTCUSDT", "1m", T0 + 777 * MINUTE))


def test_limits_until_and_bounds(sim: Sim, exchange: ccxt.binance) -> None:
    sim.clock.set(T0 + 2 * DAY)
    assert len(exchange.fetch_ohlcv("SOL/USDT", "5m")) == 500  # Binance's default limit
    raw = httpx.get(f"{sim.base_url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 5000})
    assert len(raw.json()) == 1000  # capped like Binance spot
    until = exchange.fetch_ohlcv("BTC/USDT", "1h", limit=3, params={"until": T0 + 5 * HOUR + 1})
    assert [c[0] for c in until] == [T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]
    first_ms = csv_rows("BNBUSDT", "1m")[0][0]
    early = exchange.fetch_ohlcv("BNB/USDT", "1m", since=first_ms - DAY, limit=2)
    assert [c[0] for c in early] == [first_ms, first_ms + MINUTE]


def test_no_candles_after_the_recording_ends(sim: Sim, exchange: ccxt.binance) -> None:
    last_1m = csv_rows("BTCUSDT", "1m")[-1][0]
    sim.clock.set(last_1m + 10 * DAY)
    candles = exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert [c[0] for c in candles] == [last_1m - 2 * MINUTE, last_1m - MINUTE, last_1m]
    assert exchange.fetch_ohlcv("BTC/USDT", "1m", since=last_1m + MINUTE) == []
    assert exchange.fetch_ohlcv("BTC/USDT", "5m", limit=1)[0][0] == last_1m + 10 * DAY - 5 * MINUTE


def test_errors_map_to_ccxt_exceptions(sim: Sim, exchange: ccxt.binance) -> None:
    exchange.load_markets()
    with pytest.raises(ccxt.BadSymbol):
        exchange.public_get_klines({"symbol": "NOPEUSDT", "interval": "1m"})
    with pytest.raises(ccxt.BadSymbol):
        exchange.fetch_ohlcv("NOPE/USDT", "1m")
    with pytest.raises(ccxt.BadSymbol):
        exchange.public_get_ticker_24hr({"symbol": "NOPEUSDT"})
    with pytest.raises(ccxt.BadRequest, match="-1120"):
        exchange.fetch_ohlcv("SOL/USDT", "1m")  # SOL has no 1m recording
    with pytest.raises(ccxt.BadRequest, match="-1120"):
        exchange.fetch_ohlcv("BTC/USDT", "15m")
    with pytest.raises(ccxt.BadRequest, match="-1102"):
        exchange.public_get_klines({"symbol": "BTCUSDT"})
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        exchange.public_get_klines({"symbol": "BTCUSDT", "interval": "1m", "startTime": "abc"})
    resp = httpx.get(f"{sim.base_url}/api/v3/klines", params={"symbol": "FOO", "interval": "1m"})
    assert resp.status_code == 400 and resp.json() == {"code": -1121, "msg": "Invalid symbol."}


# --- tickers -------------------------------------------------------------------------------------------


def _expected_24h(symbol_id: str, interval: str, ms: int, now: int) -> dict[str, float]:
    """24 h statistics straight from the CSV text, for the last closed candle at ``now``."""
    rows = [r for r in csv_rows(symbol_id, interval) if r[0] + ms <= now]
    last_open = rows[-1][0]
    window = [v for t, v in rows if t > last_open + ms - DAY - 1]
    return {
        "open": float(window[0][0]),
        "high": max(float(v[1]) for v in window),
        "low": min(float(v[2]) for v in window),
        "last": float(window[-1][3]),
        "volume": sum(float(v[4]) for v in window),
        "timestamp": last_open + ms - 1,
    }


def test_fetch_ticker_is_computed_from_closed_candles(sim: Sim, exchange: ccxt.binance) -> None:
    now = T0 + 5 * HOUR + 30_000
    sim.clock.set(now)
    t = exchange.fetch_ticker("BTC/USDT")
    exp = _expected_24h("BTCUSDT", "1m", MINUTE, now)
    assert t["symbol"] == "BTC/USDT" and t["timestamp"] == exp["timestamp"]
    assert (t["open"], t["high"], t["low"], t["last"], t["close"]) == (
        exp["open"], exp["high"], exp["low"], exp["last"], exp["last"],
    )
    assert t["baseVolume"] == pytest.approx(exp["volume"], rel=1e-12)
    assert t["bid"] == pytest.approx(exp["last"] - 0.01) and t["ask"] == pytest.approx(exp["last"] + 0.01)
    assert t["change"] == pytest.approx(exp["last"] - exp["open"])
    assert t["low"] <= t["vwap"] <= t["high"]
    assert t["last"] == exchange.fetch_ohlcv("BTC/USDT", "1m", limit=1)[0][4]


def test_ticker_uses_coarser_candles_after_the_finest_recording_ends(sim: Sim, exchange: ccxt.binance) -> None:
    now = csv_rows("BTCUSDT", "1m")[-1][0] + 3 * DAY + 7 * MINUTE
    sim.clock.set(now)
    t = exchange.fetch_ticker("BTC/USDT")
    exp = _expected_24h("BTCUSDT", "5m", 5 * MINUTE, now)
    assert (t["last"], t["open"], t["high"], t["low"]) == (exp["last"], exp["open"], exp["high"], exp["low"])
    assert t["timestamp"] == exp["timestamp"]


def test_fetch_tickers_all_and_some(sim: Sim, exchange: ccxt.binance) -> None:
    sim.clock.set(T0 + 12 * HOUR)
    tickers = exchange.fetch_tickers()
    assert sorted(tickers) == sorted(EXPECTED_RULES)
    for symbol, (tick, _) in EXPECTED_RULES.items():
        t = tickers[symbol]
        assert t["last"] is not None and t["bid"] == pytest.approx(t["last"] - tick)
        assert t["ask"] == pytest.approx(t["last"] + tick)
    some = exchange.fetch_tickers(["XRP/USDT", "DOGE/USDT"])
    assert sorted(some) == ["DOGE/USDT", "XRP/USDT"]
    assert some["DOGE/USDT"]["last"] == float(csv_row_at("DOGEUSDT", "5m", T0 + 12 * HOUR - 5 * MINUTE)[3])
    rolling = exchange.fetch_ticker("ETH/USDT", {"rolling": True})
    assert rolling["last"] == tickers["ETH/USDT"]["last"] and rolling["open"] == tickers["ETH/USDT"]["open"]


def test_price_and_book_tickers(sim: Sim, exchange: ccxt.binance) -> None:
    sim.clock.set(T0 + HOUR)
    last_btc = float(csv_row_at("BTCUSDT", "1m", T0 + HOUR - MINUTE)[3])
    prices = exchange.fetch_last_prices()
    assert prices["BTC/USDT"]["price"] == last_btc and len(prices) == 6
    book = exchange.fetch_bids_asks(["BTC/USDT"])["BTC/USDT"]
    assert book["bid"] == pytest.approx(last_btc - 0.01) and book["ask"] == pytest.approx(last_btc + 0.01)
    assert book["bidVolume"] > 0 and book["askVolume"] > 0
    one = httpx.get(f"{sim.base_url}/api/v3/ticker/price", params={"symbol": "BNBUSDT"}).json()
    assert one == {"symbol": "BNBUSDT", "price": b8(csv_row_at("BNBUSDT", "1m", T0 + HOUR - MINUTE)[3])}


def test_ticker_before_any_candle_closed(sim: Sim) -> None:
    sim.clock.set(csv_rows("BTCUSDT", "1m")[0][0])
    t = httpx.get(f"{sim.base_url}/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"}).json()
    assert t["lastPrice"] == "0.00000000" and t["count"] == 0


# --- operator extras ------------------------------------------------------------------------------------


def test_weight_header_404_and_status(sim: Sim) -> None:
    with httpx.Client(base_url=sim.base_url) as client:
        first = client.get("/api/v3/ping")
        second = client.get("/api/v3/exchangeInfo")
        w1, w2 = (int(r.headers["x-mbx-used-weight-1m"]) for r in (first, second))
        assert w2 == w1 + 20 or w2 == 20  # exchangeInfo weighs 20 (or a new minute began)
        missing = client.get("/api/v3/depth", params={"symbol": "BTCUSDT"})
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
        assert "x-mbx-used-weight-1m" in missing.headers
        status = client.get("/sim/status").json()
    assert status["now_ms"] == T0 and status["speed"] == 0 and status["start_ms"] == T0
    assert set(status["symbols"]) == {"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"}
    assert status["symbols"]["BTCUSDT"]["1m"] == {
        "first_ms": csv_rows("BTCUSDT", "1m")[0][0],
        "last_ms": csv_rows("BTCUSDT", "1m")[-1][0],
    }
    assert set(status["symbols"]["SOLUSDT"]) == {"5m", "1h"}
