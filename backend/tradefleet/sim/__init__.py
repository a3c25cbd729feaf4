"""Exchange simulator: recorded Binance spot candles replayed behind Binance's spot REST paths.

ccxt's ``binance`` talks to it unchanged through
``tradefleet.market.exchange.make_exchange("binance", api_base_url="http://127.0.0.1:8100")``.
Public market data (``tradefleet.sim.public``): only candles closed on the sim clock
(:class:`SimClock`) are ever served. Private side (``tradefleet.sim.private``): signed account and
order endpoints per API key (``tradefleet.sim.accounts``), orders matched against the replayed candles
(``tradefleet.sim.matching``), Binance-format errors, and fault injection for tests
(``tradefleet.sim.faults``); request signing in ``tradefleet.sim.signing``, the admin paths in
``tradefleet.sim.admin``.
"""

from tradefleet.sim.app import create_app
from tradefleet.sim.clock import SimClock
from tradefleet.sim.data import (
    DEFAULT_DATA_DIR,
    INTERVAL_MS,
    DataFile,
    MarketData,
    Series,
    list_data_files,
    load_market_data,
)
from tradefleet.sim.errors import BinanceAPIError
from tradefleet.sim.server import BackgroundServer, serve
from tradefleet.sim.state import SimState

__all__ = [
    "DEFAULT_DATA_DIR",
    "INTERVAL_MS",
    "BackgroundServer",
    "BinanceAPIError",
    "DataFile",
    "MarketData",
    "Series",
    "SimClock",
    "SimState",
    "create_app",
    "list_data_files",
    "load_market_data",
    "serve",
]
