"""Client order ids: deterministic, so that a decision is never sent twice.

The same decision (run, candle, reason, sequence) always gets the same id; the order manager looks an order up
by it before re-sending (``tradefleet.execution.orders``), and the exchange refuses a second open order with it.
"""

from __future__ import annotations

import uuid

from tradefleet.models.order import OrderReason

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_B36[rest])
    return "".join(reversed(digits)).rjust(width, "0")


_REASON_TAGS = {OrderReason.enter_long: "e", OrderReason.exit_long: "x", OrderReason.stoploss: "s",
                OrderReason.trailing_stop: "r", OrderReason.take_profit: "p", OrderReason.buy: "b",
                OrderReason.sell: "o", OrderReason.kill: "k"}


def client_order_id(run_id: uuid.UUID, signal_candle_ms: int, reason: OrderReason | str, seq: int = 0) -> str:
    """The deterministic client order id of a run's ``seq``-th order decided on one candle:
    ``t`` + run id (25 base-36 digits) + candle open time (8) + reason tag (1) + ``seq`` (1), 36
    characters, within Binance's ``newClientOrderId`` rule ``^[.A-Z:/a-z0-9_-]{1,36}$``. The same
    decision always gets the same id, which is what lets the order manager find an order before
    re-sending it. Raises ``ValueError`` for a ``seq`` outside 0-35 or a reason that is not an
    :class:`~tradefleet.models.order.OrderReason`."""
    if not 0 <= seq < 36:
        raise ValueError(f"at most 36 orders per run and candle, got sequence {seq}")
    tag = _REASON_TAGS[OrderReason(reason)]
    return f"t{_base36(run_id.int, 25)}{_base36(signal_candle_ms, 8)}{tag}{_B36[seq]}"


__all__ = ["client_order_id"]
