"""Fixtures of the API tests."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from tradefleet.models import ExchangeMarket


@pytest.fixture
def catalog(market_catalog, session) -> int:
    """binance's markets loaded from the simulator through ccxt (``market_catalog`` in
    ``tests/conftest.py``); returns the number of spot markets."""
    count = session.exec(select(func.count()).select_from(ExchangeMarket)).one()
    assert count > 0
    return count
