"""Shared pieces of the backtest tests: the repository's strategies, recorded candles, small frames."""

from __future__ import annotations

import pandas as pd
import pytest

from tradefleet.backtest import load_csv
from tradefleet.config import REPO_ROOT
from tradefleet.sandbox.registry import StrategyRegistry

DATA = REPO_ROOT / "data" / "ohlcv"


@pytest.fixture(scope="session")
def strategies() -> StrategyRegistry:
    registry = StrategyRegistry(REPO_ROOT / "strategies")
    registry.refresh()
    return registry


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    return load_csv(DATA / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz")


@pytest.fixture(scope="session")
def btc_1m() -> pd.DataFrame:
    return load_csv(DATA / "binance_spot_BTCUSDT_1m_2024-01.csv.gz")
