"""Chart data of the current user's runs and backtests: the candles of their market. Owner-scoped:
another user's run or backtest is a 404. Never calls an exchange: candles come from the candle store (``tradefleet data``,
backtest downloads, the recorded files ``make run`` stores) and from the window the engine last fetched
for the run (the cache, when it is shared: Redis)."""

from __future__ import annotations

import uuid

import orjson
import pandas as pd
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import select

from tradefleet.api.deps import CurrentUser, SessionDep
from tradefleet.api.params import epoch_ms_query
from tradefleet.market.candles import Market, cached_window
from tradefleet.market.store import load_candles
from tradefleet.models import StoredCandle
from tradefleet.models.candle import OHLCV_COLUMNS
from tradefleet.services import backtests as backtest_service
from tradefleet.services import runs as service
from tradefleet.times import datetime_ms, timeframe_ms

router = APIRouter(tags=["charts"])

_COLUMNS = ("time_ms", *OHLCV_COLUMNS)


def _chart_reply(head: dict, frame: pd.DataFrame) -> Response:
    """``head`` plus ``candles`` (the rows of ``frame``, ``ChartCandle``'s fields) as a JSON response.

    Written with orjson from the frame's columns: building and validating a pydantic model per candle
    costs more CPU than the database read at 20,000 candles, and that CPU is shared with every other
    request of the process. The reply has exactly the shape of the route's ``response_model``."""
    columns = [frame[name].astype("int64" if name == "time_ms" else "float64").tolist() for name in _COLUMNS]
    candles = [dict(zip(_COLUMNS, row)) for row in zip(*columns)]
    return Response(orjson.dumps({**head, "candles": candles}), media_type="application/json")


class ChartCandle(BaseModel):
    time_ms: int
    """Open time, epoch milliseconds UTC."""
    open: float
    high: float
    low: float
    close: float
    volume: float
    """Base currency."""


class RunCandles(BaseModel):
    run_id: uuid.UUID
    exchange: str
    symbol: str
    timeframe: str
    until_ms: int | None
    """Open time of the newest candle asked for: the run's last evaluated candle unless given."""
    candles: list[ChartCandle]
    """Ascending by time, at most ``limit``, closed candles only; gaps are not filled."""


@router.get("/runs/{run_id}/candles", response_model=RunCandles)
def run_candles(run_id: uuid.UUID, session: SessionDep, user: CurrentUser,
                limit: int = Query(300, ge=1, le=5000, description="at most this many candles"),
                until_ms: int | None = epoch_ms_query("newest candle's open time (epoch ms)")
                ) -> Response:
    """The last ``limit`` closed candles of the run's market up to ``until_ms`` (default: the run's last
    evaluated candle; a run that has not ticked yet gets the newest stored candles). Live candles
    arrive on the event stream (``candle``)."""
    run = service.get_run_or_404(session=session, owner=user, run_id=run_id)
    until = until_ms if until_ms is not None else run.last_candle_ms
    if until is None:  # not ticked yet: the newest stored candle
        until = session.exec(select(func.max(StoredCandle.time_ms)).where(
            StoredCandle.exchange == run.exchange, StoredCandle.symbol == run.symbol, StoredCandle.timeframe == run.timeframe)).one()
    tf = timeframe_ms(run.timeframe)
    if until is None:  # nothing stored and no tick yet
        return RunCandles(run_id=run.id, exchange=run.exchange, symbol=run.symbol, timeframe=run.timeframe,
                          until_ms=None, candles=[])
    until = int(until)
    start = until - (limit - 1) * tf
    stored = load_candles(session=session, exchange=run.exchange, symbol=run.symbol, timeframe=run.timeframe,
                          start_ms=start, end_ms=until)
    frames = [stored]
    if run.last_candle_ms is not None:
        window = cached_window(Market(run.exchange, run.symbol, run.timeframe), run.last_candle_ms)
        if window is not None and len(window):
            frames.append(window[(window["time_ms"] <= until) & (window["time_ms"] >= start)])
    merged = pd.concat([f for f in frames if len(f)]) if any(len(f) for f in frames) else stored
    # The engine's window wins over a stored candle of the same time (it is what the run saw).
    merged = merged.drop_duplicates(subset="time_ms", keep="last").sort_values("time_ms").tail(limit)
    return _chart_reply({"run_id": str(run.id), "exchange": run.exchange, "symbol": run.symbol,
                         "timeframe": run.timeframe, "until_ms": until}, merged)


class BacktestCandles(BaseModel):
    backtest_id: uuid.UUID
    exchange: str
    symbol: str
    timeframe: str
    candles: list[ChartCandle]
    """Ascending; the stored candles of the tested range (the requested range until it has run)."""
    truncated: bool
    """True when the range holds more than ``limit`` candles: the last ``limit`` are returned."""


@router.get("/backtests/{backtest_id}/candles", response_model=BacktestCandles)
def backtest_candles(backtest_id: uuid.UUID, session: SessionDep, user: CurrentUser,
                     limit: int = Query(2000, ge=1, le=20_000, description="at most this many candles")
                     ) -> Response:
    """The candles a backtest was tested on, from the candle store, for its chart with trade markers: the
    newest ``limit`` of the tested range (only those rows are read). A heavy route: its own per-user rate
    limit and in-flight slots (``security/user_limits.py``)."""
    backtest = backtest_service.get_backtest_or_404(session=session, owner=user, backtest_id=backtest_id)
    start = backtest.tested_start or backtest.start
    end = backtest.tested_end or backtest.end
    # One row more than asked for says whether the range holds more; nothing beyond it is read.
    frame = load_candles(session=session, exchange=backtest.exchange, symbol=backtest.symbol,
                         timeframe=backtest.timeframe, start_ms=datetime_ms(start),
                         end_ms=datetime_ms(end) - 1, last=limit + 1)
    truncated = len(frame) > limit
    return _chart_reply({"backtest_id": str(backtest.id), "exchange": backtest.exchange, "symbol": backtest.symbol,
                         "timeframe": backtest.timeframe, "truncated": truncated}, frame.tail(limit))
