"""Moving-average crossover on a short window, as an author would upload it (browser tests)."""

from tradefleet.strategy import IntParam, ParamError, Strategy


class AuthorSma(Strategy):
    """Long when the fast SMA of the close crosses above the slow SMA; flat when it crosses back below.

    An author's variant of the bundled crossover with shorter default windows. The review page shows
    this file as text, markup included: <script>alert("not run")</script>.
    """

    name = "author_sma"
    timeframe = "1h"
    fast = IntParam(6, low=2, high=100, help="fast SMA length, in candles")
    slow = IntParam(20, low=3, high=200, help="slow SMA length, in candles")

    @classmethod
    def check_params(cls, params):
        if params["fast"] >= params["slow"]:
            raise ParamError("fast", f"must be below slow ({params['slow']}), got {params['fast']}")

    @property
    def startup_candles(self) -> int:
        return max(self.fast, self.slow)

    def signals(self, candles):
        close = candles["close"]
        fast = close.rolling(self.fast).mean()
        slow = close.rolling(self.slow).mean()
        above = fast > slow
        was_above = above.shift(1, fill_value=False)
        valid = slow.notna() & slow.shift(1).notna()
        return candles.assign(
            enter_long=above & ~was_above & valid,
            exit_long=~above & was_above & valid,
        )
