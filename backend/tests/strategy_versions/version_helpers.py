"""Strategy sources and request helpers of the strategy-version tests.

The sources are the shipped ``sma_cross.py`` under another class name, so an upload is a real strategy
that passes the check suite; ``revision`` changes its bytes (a new version) without changing its code.
"""

from __future__ import annotations

from tradefleet.config import REPO_ROOT

UPLOADS = "/api/v1/strategies/uploads"
ADMIN_VERSIONS = "/api/v1/admin/strategy-versions"
SMA_CROSS = (REPO_ROOT / "strategies" / "sma_cross.py").read_text()


def cross_source(class_name: str = "AuthorCross", *, revision: int = 0, fast_low: int = 2,
                 trades: bool = True) -> str:
    """``sma_cross.py`` as class ``class_name`` (catalog name: its snake case); ``revision`` adds a
    comment line (other bytes, same behaviour); ``fast_low`` is the lowest ``fast`` it accepts;
    ``trades=False``: it never enters."""
    text = SMA_CROSS.replace("class SmaCross(Strategy):", f"class {class_name}(Strategy):")
    text = text.replace("IntParam(10, low=2,", f"IntParam(10, low={fast_low},")
    if not trades:
        text = text.replace("enter_long=above & ~was_above & valid,", "enter_long=above & False,")
    assert class_name in text and f"low={fast_low}," in text and ("& False" in text) != trades
    return text + (f"\n# revision {revision}\n" if revision else "")


CHEAT = '''
from tradefleet.strategy import IntParam, Strategy


class PeekAhead(Strategy):
    """Deliberately cheating: buys when the next candle closes higher."""

    timeframe = "1h"
    startup_candles = 1
    window = IntParam(3, low=1, high=10, help="unused")

    def signals(self, candles):
        close = candles["close"]
        nxt = close.shift(-1)
        return candles.assign(enter_long=(nxt > close).fillna(False), exit_long=(nxt < close).fillna(False))
'''


def upload(client, source: str | bytes, filename: str = "author_cross.py"):
    """``POST /strategies/uploads`` with ``source`` as the multipart field ``file``."""
    data = source.encode() if isinstance(source, str) else source
    return client.post(UPLOADS, files={"file": (filename, data, "text/x-python")})
