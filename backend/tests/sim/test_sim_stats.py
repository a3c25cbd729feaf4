"""``GET /sim/stats``: the requests the simulator served, per path and per klines market."""

from __future__ import annotations

from sim_helpers import T0
from starlette.testclient import TestClient

from tradefleet.sim import MarketData, SimClock, create_app


def test_stats_count_requests_per_path_and_klines_per_market(market_data: MarketData) -> None:
    app = create_app(data=market_data, clock=SimClock(T0, speed=0))
    with TestClient(app) as client:
        assert client.get("/sim/stats").json() == {"now_ms": T0, "requests": {"/sim/stats": 1}, "klines": {}}
        for _ in range(3):
            assert client.get("/api/v3/time").status_code == 200
        for symbol, interval in [("BTCUSDT", "1m"), ("BTCUSDT", "1m"), ("BTCUSDT", "5m"), ("ETHUSDT", "1m")]:
            reply = client.get("/api/v3/klines", params={"symbol": symbol, "interval": interval, "limit": 5})
            assert reply.status_code == 200 and len(reply.json()) == 5
        # Rejected requests reached the exchange too: counted by path; klines of no market are not.
        assert client.get("/api/v3/klines", params={"symbol": "NOPEUSDT", "interval": "1m"}).status_code == 400
        assert client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "3m"}).status_code == 400
        assert client.get("/api/v3/nope").status_code == 404
        stats = client.get("/sim/stats")
    assert stats.headers["x-mbx-used-weight-1m"]  # a sim path like /sim/status: weight 0, header kept
    assert stats.json() == {
        "now_ms": T0,
        "requests": {"/api/v3/klines": 6, "/api/v3/nope": 1, "/api/v3/time": 3, "/sim/stats": 2},
        "klines": {"BTCUSDT": {"1m": 2, "5m": 1}, "ETHUSDT": {"1m": 1}},
    }


def test_stats_are_per_app(market_data: MarketData) -> None:
    first = create_app(data=market_data, clock=SimClock(T0, speed=0))
    second = create_app(data=market_data, clock=SimClock(T0, speed=0))
    with TestClient(first) as client:
        client.get("/api/v3/ping")
    with TestClient(second) as client:
        assert client.get("/sim/stats").json()["requests"] == {"/sim/stats": 1}
