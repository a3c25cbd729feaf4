"""Finding the markets that have a newly closed candle and dispatching their evaluation.

Fired by beat every ``SCHEDULE_INTERVAL_S``. Time comes from the market: each exchange is asked for
its clock once per call (``fetch_time``), and a run is due when its market's latest closed candle is
newer than the last one it evaluated. Work is grouped by market ``(exchange, symbol, timeframe)``:
one ``evaluate_market`` task per market and batch of at most ``ENGINE_BATCH_SIZE`` runs, so market
data requests grow with distinct markets, not with runs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.cache import get_cache
from tradefleet.config import get_settings
from tradefleet.db import session_scope
from tradefleet.engine import strategy_params
from tradefleet.market.candles import Market, fetch_exchange_time
from tradefleet.market.exchange import ExchangeError
from tradefleet.models import Run, RunStatus
from tradefleet.strategy.guard import StrategyError, call_guarded
from tradefleet.sandbox.versions import UnknownVersion, current_bundled_version_id, strategy_for_version
from tradefleet.times import last_closed_candle_ms

log = logging.getLogger(__name__)

MAX_WINDOW = 1000
"""Candles per fetch: Binance's klines limit. Startup plus catch-up never asks for more."""


@dataclass(frozen=True)
class Dispatch:
    """One evaluation to enqueue: these runs of this market, up to this candle, with this window."""

    market: Market
    candle_ms: int
    run_ids: list[uuid.UUID]
    limit: int


def _required_candles(session: Session, version_id: uuid.UUID | None, strategy: str, params: dict,
                      cache: dict) -> int:
    """Candles one evaluation of the run's pinned version needs with ``params`` (1 when that cannot be
    told: the evaluation then pauses the run with the reason). A run stored before versions is asked
    about the current bundled version of ``strategy``."""
    if version_id is None:
        version_id = current_bundled_version_id(session, strategy)
    key = (version_id, strategy_params.params_key(params))
    if key not in cache:
        try:
            if version_id is None:
                raise UnknownVersion(strategy)
            klass = strategy_for_version(version_id, session=session)
            known = strategy_params.known(klass, key[1])
            if known is None:
                validated = klass.validate_params(params)
                required = int(call_guarded(klass(validated).required_candles,
                                            timeout_s=get_settings().STRATEGY_TIMEOUT_S))
                strategy_params.remember(klass, key[1], validated, required)
                known = (validated, required)
            cache[key] = known[1]
        except (UnknownVersion, StrategyError, ValueError, LookupError):
            cache[key] = 1  # the evaluation pauses the run with the reason
        except Exception as exc:  # the sandbox's StrategyLoadError / SandboxUnavailable
            from tradefleet.sandbox import SandboxUnavailable, StrategyLoadError

            if not isinstance(exc, (StrategyLoadError, SandboxUnavailable)):
                raise
            cache[key] = 1
    return cache[key]


def plan(now_ms_for: Callable[[str], int] = fetch_exchange_time) -> list[Dispatch]:
    """The evaluations due now. Exchanges that cannot tell their time are skipped (logged) and
    their runs wait: nothing is lost, they catch up on a later call."""
    settings = get_settings()
    cache = get_cache()
    dispatches: list[Dispatch] = []
    with session_scope() as session:
        markets = session.exec(
            select(Run.exchange, Run.symbol, Run.timeframe, func.min(func.coalesce(Run.last_candle_ms, -1)))
            .where(Run.status == RunStatus.running)
            .group_by(Run.exchange, Run.symbol, Run.timeframe)
        ).all()
        clocks: dict[str, int | None] = {}
        startup_cache: dict = {}
        for exchange, symbol, timeframe, oldest in markets:
            if exchange not in clocks:
                try:
                    clocks[exchange] = now_ms_for(exchange)
                except (ExchangeError, OSError) as exc:
                    log.warning("cannot read %s's clock: %s", exchange, exc)
                    clocks[exchange] = None
            now_ms = clocks[exchange]
            if now_ms is None:
                continue
            market = Market(exchange, symbol, timeframe)
            try:
                latest = last_closed_candle_ms(now_ms, timeframe)
            except ValueError:
                continue
            if oldest >= latest:
                continue
            # One dispatch per market and candle, however often beat fires while it runs; the mark
            # expires so that a lost task is dispatched again.
            if not cache.add(f"sched:{market.key}:{latest}", b"1", ttl_s=30):
                continue
            due = session.exec(
                select(Run.id, Run.strategy_version_id, Run.strategy, Run.params, Run.last_candle_ms)
                .where(Run.status == RunStatus.running, Run.exchange == exchange, Run.symbol == symbol,
                       Run.timeframe == timeframe)
                .where((Run.last_candle_ms.is_(None)) | (Run.last_candle_ms < latest))
                .order_by(Run.id)
            ).all()
            if not due:
                continue
            tf = market.timeframe_ms
            startup = max(_required_candles(session, v, s, p, startup_cache) for _, v, s, p, _ in due)
            behind = max(((latest - last) // tf) if last is not None else 1 for *_, last in due)
            catchup = min(int(behind), settings.ENGINE_MAX_CATCHUP_CANDLES)
            limit = min(MAX_WINDOW, startup + catchup)
            ids = [row[0] for row in due]
            for offset in range(0, len(ids), settings.ENGINE_BATCH_SIZE):
                dispatches.append(Dispatch(market, latest, ids[offset:offset + settings.ENGINE_BATCH_SIZE], limit))
    return dispatches
