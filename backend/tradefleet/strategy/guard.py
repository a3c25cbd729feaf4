"""The one guard around every call into strategy code (freqtrade's ``strategy_wrapper`` pattern).

Exceptions, time-outs and bad return values all become a :class:`StrategyError`, which the engine
turns into a run event and a paused run; the worker itself never dies of a strategy's bug.
"""

from __future__ import annotations

import contextvars
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from tradefleet.strategy.base import SIGNAL_COLUMNS, Strategy

T = TypeVar("T")


class StrategyError(Exception):
    """A strategy raised, timed out or returned something unusable. The message is for the trader."""


class StrategyTimeout(StrategyError):
    pass


ALARM_GRACE_S = 0.5
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("strategy_deadline", default=None)


def current_deadline() -> float | None:
    """The ``time.monotonic()`` by which the innermost :func:`call_guarded` must return, or None. A
    sandboxed strategy's proxy kills its runner at that time."""
    return _DEADLINE.get()


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        # A sandboxed call is killed by its proxy at the deadline; the alarm, a little later, is the
        # backstop for code that runs in this process (the platform's own calls around it).
        with _alarm(seconds + ALARM_GRACE_S, shown=seconds):
            yield
    finally:
        _DEADLINE.reset(token)


@contextmanager
def deadline_paused() -> Iterator[None]:
    """Time spent inside does not count against the enclosing :func:`call_guarded` budget: the deadline
    moves on by that time and the backstop alarm is held meanwhile. For the platform's own work inside a
    guarded call, such as starting a strategy's runner process (importing numpy and pandas), which is
    bounded by its own timeout and is not the strategy's to answer for."""
    deadline = _DEADLINE.get()
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    left = signal.setitimer(signal.ITIMER_REAL, 0)[0] if use_alarm else 0.0
    started = time.monotonic()
    try:
        yield
    finally:
        if deadline is not None:
            _DEADLINE.set(deadline + (time.monotonic() - started))
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, left)


@contextmanager
def _alarm(seconds: float, *, shown: float) -> Iterator[None]:
    # SIGALRM interrupts pure-Python loops in the main thread (Celery's prefork children run tasks
    # there). Elsewhere (threads) the call cannot be interrupted; it is measured and failed after.
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not use_alarm:
        start = time.monotonic()
        yield
        if time.monotonic() - start > shown:
            raise StrategyTimeout(f"strategy took longer than {shown:g} s")
        return

    def _on_alarm(signum, frame):  # noqa: ARG001
        raise StrategyTimeout(f"strategy took longer than {shown:g} s")

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_guarded(fn: Callable[..., T], *args: Any, timeout_s: float, what: str = "strategy") -> T:
    """Call ``fn(*args)``; any exception or a run past ``timeout_s`` raises :class:`StrategyError`."""
    try:
        with _deadline(timeout_s):
            return fn(*args)
    except StrategyError:
        raise
    except Exception as exc:  # noqa: BLE001 - the point of the guard
        raise StrategyError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def compute_signals(strategy: Strategy, candles: pd.DataFrame, *, timeout_s: float,
                    copy: bool = True) -> pd.DataFrame:
    """Run ``strategy.signals`` under the guard and check its output.

    Returns the strategy's DataFrame (same index as ``candles``) holding columns ``enter_long`` and
    ``exit_long`` (NaN kept as NaN for the caller to judge per row: :class:`SignalReader`). Raises
    :class:`StrategyError` if the strategy raises, times out, returns something that is not a
    DataFrame, changes the index, or lacks a signal column. ``copy=False`` when ``candles`` is
    already a frame of the caller's own (a fresh slice) that the strategy may not spoil.
    """
    result = call_guarded(strategy.signals, candles.copy(deep=False) if copy else candles, timeout_s=timeout_s,
                          what=f"{strategy.name}.signals()")
    if not isinstance(result, pd.DataFrame):
        raise StrategyError(f"{strategy.name}.signals() returned {type(result).__name__}, expected a DataFrame")
    if len(result) != len(candles) or not result.index.equals(candles.index):
        raise StrategyError(
            f"{strategy.name}.signals() returned {len(result)} rows for {len(candles)} candles "
            "(the index must be the candles' index)"
        )
    missing = [c for c in SIGNAL_COLUMNS if c not in result.columns]
    if missing:
        raise StrategyError(f"{strategy.name}.signals() returned no column {', '.join(missing)}")
    return result


def signal_bool(value: Any) -> bool | None:
    """One ``enter_long`` / ``exit_long`` value as a bool: booleans, and the integers 0 and 1;
    ``None`` for anything else (NaN, ``None``, ``pd.NA``, other numbers, strings...)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    return None


def signal_problem(name: str, column: str, when: Any, value: Any) -> str:
    """The message for a signal value :func:`signal_bool` refuses, naming the strategy, the column and
    the candle ``when``: ``"<name>.signals() gave NaN in <column> at <when>"`` for NaN, ``None`` and
    ``pd.NA``, else ``"... gave <value!r> in <column> at <when>, expected a boolean"``."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return f"{name}.signals() gave NaN in {column} at {when}"
    shown = value.item() if isinstance(value, np.generic) else value
    return f"{name}.signals() gave {shown!r} in {column} at {when}, expected a boolean"


class SignalReader:
    """The ``enter_long`` / ``exit_long`` values of a :func:`compute_signals` result, read by row.

    :meth:`at` returns a bool; a value :func:`signal_bool` refuses raises :class:`StrategyError`
    with :func:`signal_problem`'s message."""

    __slots__ = ("columns", "index", "name")

    def __init__(self, result: pd.DataFrame, name: str) -> None:
        self.name = name
        self.index = result.index
        self.columns = {}
        for column in SIGNAL_COLUMNS:
            values = result[column]
            if isinstance(values, pd.DataFrame):
                raise StrategyError(f"{name}.signals() returned more than one {column} column")
            # bool columns (the usual case) as a numpy array; others as pandas stores them, so a
            # row reads exactly as ``Series.iat`` would (NaN, pd.NA, numpy scalars...).
            self.columns[column] = values.to_numpy() if values.dtype == np.bool_ else values.array

    def at(self, row: int, column: str) -> bool:
        value = self.columns[column][row]
        read = signal_bool(value)
        if read is None:
            raise StrategyError(signal_problem(self.name, column, self.index[row], value))
        return read
