"""RSI mean reversion, long only."""

from tradefleet.strategy import IntParam, DecimalParam, Strategy


class RsiReversion(Strategy):
    """Buy when the RSI falls below an oversold threshold; sell when it rises above an overbought one.

    RSI is Wilder's relative strength index (J. Welles Wilder, *New Concepts in Technical Trading
    Systems*, 1978) computed here with simple moving averages of gains and losses over `period`
    candles (Cutler's RSI), so a window of `period + 1` candles gives exactly the full-history value.
    """

    timeframe = "1h"
    period = IntParam(14, low=2, high=100, help="RSI length, in candles")
    oversold = DecimalParam(30.0, low=1.0, high=50.0, step=0.5, help="enter below this RSI")
    overbought = DecimalParam(70.0, low=50.0, high=99.0, step=0.5, help="exit above this RSI")

    @property
    def startup_candles(self) -> int:
        return self.period + 1

    def signals(self, candles):
        delta = candles["close"].diff()
        gain = delta.clip(lower=0).rolling(self.period).mean()
        loss = (-delta.clip(upper=0)).rolling(self.period).mean()
        rsi = 100 - 100 / (1 + gain / loss)
        rsi = rsi.where(loss != 0, 100.0).where(gain.notna())
        return candles.assign(
            enter_long=(rsi < self.oversold).fillna(False),
            exit_long=(rsi > self.overbought).fillna(False),
        )
