"""The author-facing base class. Subclass :class:`Strategy` in a ``.py`` file in ``STRATEGIES_DIR``.

The same class runs in backtest, paper and live (DESIGN.md section 4): the platform calls
:meth:`Strategy.signals` on a window of closed candles and reads the rows it has not seen yet.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from tradefleet.strategy.params import Param, ParamError

if TYPE_CHECKING:
    from tradefleet.strategy.context import CandleContext

INTERFACE_VERSION = 1
"""Bumped when a hook's contract changes; a strategy may pin the version it was written for."""

SIGNAL_COLUMNS = ("enter_long", "exit_long")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Strategy:
    """Base class of every strategy.

    Class attributes an author sets:

    - ``name``: the catalog name (default: the class name in snake_case, ``SmaCross`` → ``sma_cross``).
    - ``timeframe``: the timeframe it was designed for (ccxt notation, ``"1h"``); a run may choose another.
    - ``startup_candles``: closed candles needed before the first valid signal. May be a property
      computed from the parameters.
    - ``stoploss``: optional, a negative fraction of the entry price (``-0.05`` = 5 % below entry).
    - ``take_profit``: optional, a positive fraction of the entry price (``0.1`` = exit 10 % above).
    - ``trailing_stop``: optional, a fraction (``0.03`` = exit 3 % below the highest high since entry).
    - ``position_size``: fraction of the run's available quote balance spent on an entry (0..1].

    How stoploss, trailing stop and take-profit resolve inside one candle is the fill model of
    :mod:`tradefleet.execution.account` (and STRATEGIES.md).
    - parameters: :class:`~tradefleet.strategy.params.Param` instances (``fast = IntParam(10, ...)``).

    The docstring's first paragraph is the catalog description.
    """

    INTERFACE_VERSION: ClassVar[int] = INTERFACE_VERSION
    name: ClassVar[str] = ""
    timeframe: ClassVar[str] = "1h"
    startup_candles: int = 0
    stoploss: ClassVar[float | None] = None
    take_profit: ClassVar[float | None] = None
    trailing_stop: ClassVar[float | None] = None
    position_size: ClassVar[float] = 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = _snake(cls.__name__)

    def __init__(self, params: dict[str, Any] | None = None, *, logger: logging.Logger | None = None):
        """``params`` must already be validated (:meth:`validate_params`); missing ones take defaults."""
        self.params: dict[str, Any] = dict(params or {})
        self.logger = logger or logging.getLogger(f"tradefleet.strategy.{self.name}")

    # ------------------------------------------------------------------ the hook authors write
    def signals(self, candles: pd.DataFrame) -> pd.DataFrame:
        """Compute entry and exit signals over a window of closed candles. Vectorised.

        Called: by a backtest once over the whole history; by the fleet engine once per closed candle
        on the latest window (at least ``startup_candles`` rows before the rows being evaluated).

        Receives: a DataFrame indexed by candle open time (``DatetimeIndex``, UTC, ascending, no
        gaps from the exchange's point of view) with float columns ``open, high, low, close, volume``
        (prices in the quote currency, volume in the base currency). Do not modify it in place.

        Returns: a DataFrame (or the input with columns added) with the same index and boolean
        columns ``enter_long`` and ``exit_long``. Row ``t`` must depend only on rows ``<= t``: the
        platform compares full-history and truncated-window signals and flags strategies that look
        ahead. Rows inside the startup period may be False; NaN in an evaluated row is an error.

        Not implemented: allowed only when :meth:`on_candle` is implemented (the strategy then has no
        signals); otherwise the registry reports the file as broken.

        Must not: do network or disk I/O, block, sleep, or keep state between calls.
        """
        raise NotImplementedError

    def on_candle(self, ctx: "CandleContext") -> None:
        """Optional stateful hook, for logic that cannot be vectorised (grids, DCA).

        Called: once per closed candle, after the fills at that candle's open, the protective exits
        and the ``signals`` decision (so ``ctx`` shows their effect), in backtest, paper and live.

        Receives: a :class:`~tradefleet.strategy.context.CandleContext`: the candle, the window,
        cash, position, average entry price, pending orders, ``state`` (a dict persisted with the
        run between candles), ``buy(quote_amount)`` / ``sell(amount=None)`` (market orders filled at
        the next open) and ``log`` (lines become run events).

        Returns: nothing. Changes go through ``ctx``. ``state`` must stay JSON-serialisable (at most
        64 KiB); otherwise the run is paused.

        Not implemented: nothing is called; the strategy trades on ``signals`` alone.

        Must not: do network or disk I/O, block, or keep state anywhere but ``ctx.state`` (a strategy
        object is not kept between candles).
        """

    @classmethod
    def has_signals(cls) -> bool:
        return cls.signals is not Strategy.signals

    @classmethod
    def is_stateful(cls) -> bool:
        return cls.on_candle is not Strategy.on_candle

    # ------------------------------------------------------------------ platform side
    @classmethod
    def parameters(cls) -> dict[str, Param]:
        """The declared parameters, by name, in declaration order (base classes first)."""
        out: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Param):
                    out[key] = value
        return out

    @classmethod
    def description(cls) -> str:
        """The first paragraph of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return " ".join(doc.split("\n\n", 1)[0].split())

    @classmethod
    def params_schema(cls) -> dict[str, Any]:
        """The parameters as a JSON schema object (``properties``, ``required: []``, no extras)."""
        return {
            "type": "object",
            "properties": {name: p.schema() for name, p in cls.parameters().items()},
            "additionalProperties": False,
        }

    @classmethod
    def validate_params(cls, raw: dict[str, Any] | None) -> dict[str, Any]:
        """Check ``raw`` against the declarations and return every parameter with its value.

        Raises :class:`ParamError` for the first unknown name, wrong type or out-of-range value.
        """
        raw = dict(raw or {})
        declared = cls.parameters()
        for key in raw:
            if key not in declared:
                raise ParamError(key, "unknown parameter")
        values = {name: p.validate(raw[name]) if name in raw else p.default for name, p in declared.items()}
        cls.check_params(values)
        return values

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Override to check rules between parameters (``fast < slow``); raise :class:`ParamError`
        naming the field. ``params`` holds every parameter, already type- and range-checked."""

    @classmethod
    def check_definition(cls) -> None:
        """Raise ``TypeError``/:class:`ParamError` if the class itself is unusable: ``signals`` not
        implemented, a default outside its range, a bad stoploss or position size."""
        if not cls.has_signals() and not cls.is_stateful():
            raise TypeError(f"{cls.__name__} implements neither signals() nor on_candle()")
        for name, p in cls.parameters().items():
            try:
                p.validate(p.default)
            except ParamError as exc:
                raise ParamError(name, f"default {p.default!r} is invalid: {exc.message}") from None
        cls.check_params({name: p.default for name, p in cls.parameters().items()})
        if cls.stoploss is not None and not -1 < cls.stoploss < 0:
            raise TypeError(f"{cls.__name__}.stoploss must be a negative fraction, got {cls.stoploss}")
        if cls.take_profit is not None and not cls.take_profit > 0:
            raise TypeError(f"{cls.__name__}.take_profit must be a positive fraction, got {cls.take_profit}")
        if cls.trailing_stop is not None and not 0 < cls.trailing_stop < 1:
            raise TypeError(f"{cls.__name__}.trailing_stop must be a fraction in (0, 1), got {cls.trailing_stop}")
        if not 0 < cls.position_size <= 1:
            raise TypeError(f"{cls.__name__}.position_size must be in (0, 1], got {cls.position_size}")

    def required_candles(self) -> int:
        """How many closed candles one evaluation needs: ``startup_candles`` plus the evaluated row."""
        return int(self.startup_candles) + 1
