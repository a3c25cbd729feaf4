"""Hostile, in on_candle: places orders past the context's own checks (straight into its order list):
a buy of 10^15 quote, far above the run's cash."""

from tradefleet.strategy import Strategy


class ForgedOrders(Strategy):
    """Stateful; buys far more than it has."""

    timeframe = "1m"

    def on_candle(self, ctx):
        ctx.orders.append(["buy", 1e15])
        ctx.log.info("forged a buy of 1e15 with cash %s", ctx.cash)
