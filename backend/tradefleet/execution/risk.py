"""The risk guard: checked before every live order is sent, and the admin's global halt.

:func:`check_order` answers one question, "may this order go to the exchange now?", from the
database alone (no network): the caller records the answer as a run event (``risk_allowed`` with the
reason, or ``risk_refused``) and sends only an allowed order. The rules, in order:

1. **Global halt** (``trading_halt`` row, set by an admin with ``PUT /api/v1/admin/halt``): nothing is
   sent while it is on, buys and sells alike. Runs keep their status.
2. **Run state**: the run must be live and running (a stopped, paused or killed run sends nothing),
   except the closing sell of a kill (``reason="kill"``), which is what a kill is for.
3. **Per-run stake**: a buy spends at most the run's cash (its stake less what is in the position and
   fees; quote currency); a sell sells at most the run's position (base currency).
4. **Per-user open exposure** (``MAX_OPEN_EXPOSURE_QUOTE``): the quote value of the user's open live
   positions (at each run's last price) plus pending live buys plus this buy must not exceed it.
5. **Per-user daily loss** (``MAX_DAILY_LOSS_QUOTE``): once the user's live trades closed today (UTC,
   market time: the day of the run's latest candle) have lost that much (net of fees), buys are
   refused until the next UTC day.

Sells (exits, stoplosses, kills) are never refused by rules 4 and 5: they reduce risk. The per-run
stoploss is the strategy's own ``stoploss``, turned into a market sell by the live tick when a closed
candle's low reaches it (:mod:`tradefleet.engine.live`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timezone

from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.cache import get_cache
from tradefleet.config import get_settings
from tradefleet.models import LIVE_PENDING, Order, OrderReason, OrderSide, Run, RunMode, RunStatus, Trade, TradeStatus
from tradefleet.models._types import utcnow
from tradefleet.models.system import TradingHalt

HALT_CACHE_KEY = "risk:halt"
HALT_CACHE_TTL_S = 2


@dataclass(frozen=True)
class Halt:
    halted: bool
    reason: str | None
    at: datetime | None


def _read_halt(session: Session) -> Halt:
    row = session.get(TradingHalt, 1)
    if row is None:
        return Halt(False, None, None)
    return Halt(row.halted, row.reason, row.at)


def get_halt(session: Session, *, fresh: bool = False) -> Halt:
    """The global halt, from the cache (shared through Redis, ``HALT_CACHE_TTL_S`` seconds) or the
    ``trading_halt`` row. ``fresh`` reads the row (the order path does, right before a send)."""
    cache = get_cache()
    if not fresh:
        raw = cache.get(HALT_CACHE_KEY)
        if raw is not None:
            data = json.loads(raw)
            return Halt(data["halted"], data["reason"], datetime.fromisoformat(data["at"]) if data["at"] else None)
    halt = _read_halt(session)
    _cache_halt(halt)
    return halt


def _cache_halt(halt: Halt) -> None:
    get_cache().set(HALT_CACHE_KEY, json.dumps({"halted": halt.halted, "reason": halt.reason,
                                                "at": halt.at.isoformat() if halt.at else None}).encode(),
                    ttl_s=HALT_CACHE_TTL_S)


def set_halt(*, session: Session, halted: bool, reason: str | None, by_user_id: uuid.UUID | None) -> Halt:
    """Turn the global halt on or off (commits) and refresh the cache at once."""
    row = session.get(TradingHalt, 1, with_for_update=True)
    if row is None:
        row = TradingHalt(id=1)
    row.halted, row.reason, row.at, row.by_user_id = halted, (reason or None), utcnow(), by_user_id
    session.add(row)
    session.commit()
    halt = Halt(row.halted, row.reason, row.at)
    _cache_halt(halt)
    return halt


@dataclass(frozen=True)
class RiskDecision:
    """``allowed`` and why (either way), with the figures the decision used (quote currency)."""

    allowed: bool
    reason: str
    data: dict

    @property
    def event_kind(self) -> str:
        return "risk_allowed" if self.allowed else "risk_refused"


def _start_of_day_utc(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(timezone.utc).date(), time(0), tzinfo=timezone.utc)


def open_exposure(session: Session, owner_id: uuid.UUID) -> float:
    """Quote value of the owner's open live positions (at each run's last price, else entry price)
    plus the budgets of their live buys that are not final."""
    runs = session.exec(select(Run.position_amount, Run.last_price, Run.position_entry_price).where(
        Run.owner_id == owner_id, Run.mode == RunMode.live, Run.position_amount > 0)).all()
    held = sum(amount * (price if price is not None else (entry or 0.0)) for amount, price, entry in runs)
    pending = session.exec(select(func.coalesce(func.sum(Order.quote_amount), 0.0)).join(Run, Run.id == Order.run_id)
                           .where(Run.owner_id == owner_id, Run.mode == RunMode.live, Order.side == OrderSide.buy,
                                  Order.status.in_(LIVE_PENDING))).one()
    return float(held) + float(pending or 0.0)


def daily_loss(session: Session, owner_id: uuid.UUID, now_ms: int | None = None) -> float:
    """Realised loss (positive number, quote currency) of the owner's live trades closed on the UTC
    day of ``now_ms`` (market time: the run's latest candle, as everywhere in the engine; default
    the wall clock)."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc) if now_ms is not None else utcnow()
    start_ms = int(_start_of_day_utc(now).timestamp() * 1000)
    pnl = session.exec(select(func.coalesce(func.sum(Trade.pnl), 0.0)).join(Run, Run.id == Trade.run_id)
                       .where(Run.owner_id == owner_id, Run.mode == RunMode.live, Trade.status == TradeStatus.closed,
                              Trade.exit_time_ms >= start_ms)).one()
    return max(0.0, -float(pnl or 0.0))


def check_order(session: Session, run: Run, order: Order, *, price: float | None) -> RiskDecision:
    """May ``order`` (an intent of live ``run``) be sent now? ``price`` is the latest price known
    (quote per base), used to value a buy's amount when it has no quote budget. Reads the halt fresh."""
    settings = get_settings()
    halt = get_halt(session, fresh=True)
    side = order.side.value
    if halt.halted:
        return RiskDecision(False, f"trading is halted by an admin{': ' + halt.reason if halt.reason else ''}",
                            {"rule": "halt"})
    if run.mode != RunMode.live:
        return RiskDecision(False, "not a live run", {"rule": "mode"})
    if order.reason != OrderReason.kill and (run.status != RunStatus.running or run.killed_at is not None):
        return RiskDecision(False, f"run is {run.status.value if run.killed_at is None else 'killed'}",
                            {"rule": "run_status"})
    if order.side == OrderSide.sell:
        if order.amount > run.position_amount * (1 + 1e-9):
            return RiskDecision(False, f"sell of {order.amount:g} exceeds the run's position {run.position_amount:g}",
                                {"rule": "position", "position": run.position_amount})
        return RiskDecision(True, f"{side} {order.amount:g} within the run's position {run.position_amount:g}",
                            {"rule": "position", "position": run.position_amount})
    cost = order.quote_amount if order.quote_amount is not None else order.amount * (price or order.price or 0.0)
    if cost > run.cash * (1 + 1e-9):
        return RiskDecision(False, f"buy of {cost:.8g} exceeds the run's cash {run.cash:.8g} (stake {run.stake:g})",
                            {"rule": "stake", "cost": cost, "cash": run.cash})
    data: dict = {"cost": cost, "cash": run.cash}
    if settings.MAX_DAILY_LOSS_QUOTE is not None:
        loss = daily_loss(session, run.owner_id, run.last_candle_ms)
        data.update(daily_loss=loss, max_daily_loss=settings.MAX_DAILY_LOSS_QUOTE)
        if loss >= settings.MAX_DAILY_LOSS_QUOTE:
            return RiskDecision(False, f"daily loss {loss:.8g} reached the cap {settings.MAX_DAILY_LOSS_QUOTE:g}",
                                {"rule": "daily_loss", **data})
    if settings.MAX_OPEN_EXPOSURE_QUOTE is not None:
        # This order's own budget is already counted when it is a pending buy of the run.
        exposure = open_exposure(session, run.owner_id)
        if order.status not in LIVE_PENDING or order.quote_amount is None:
            exposure += cost
        data.update(exposure=exposure, max_exposure=settings.MAX_OPEN_EXPOSURE_QUOTE)
        if exposure > settings.MAX_OPEN_EXPOSURE_QUOTE * (1 + 1e-9):
            return RiskDecision(False, f"open exposure would be {exposure:.8g}, above the cap "
                                f"{settings.MAX_OPEN_EXPOSURE_QUOTE:g}", {"rule": "exposure", **data})
    return RiskDecision(True, f"buy of {cost:.8g} within the run's cash and the user's caps", {"rule": "ok", **data})
