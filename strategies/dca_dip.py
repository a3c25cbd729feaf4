"""Dollar-cost averaging into dips, with a take-profit on the average entry: a stateful strategy."""

from tradefleet.strategy import DecimalParam, IntParam, Strategy


class DcaDip(Strategy):
    """Buy a fixed slice of the stake each time the price falls a step below the last buy; sell everything at a profit over the average entry.

    A classic DCA ("safety orders") bot, written with the stateful `on_candle` hook because each
    decision depends on its own past orders: the first slice is bought at once, each further slice
    when the close is `step_pct` below the previous buy price, up to `max_buys` slices; the whole
    position is sold when the close is `take_profit_pct` above the average entry price. The state
    (slices bought, last buy price) is persisted with the run between candles.
    """

    timeframe = "1h"
    slice_pct = DecimalParam(20.0, low=1.0, high=100.0, help="share of the stake bought per slice, percent")
    step_pct = DecimalParam(2.0, low=0.1, high=50.0, help="price drop below the last buy that triggers the next slice, percent")
    max_buys = IntParam(5, low=1, high=50, help="slices at most per round")
    take_profit_pct = DecimalParam(3.0, low=0.1, high=100.0, help="sell everything this far above the average entry, percent")

    def on_candle(self, ctx):
        state = ctx.state
        close = ctx.candle.close
        if ctx.pending:
            return  # wait for the last order to fill
        if ctx.position > 0:
            if close >= ctx.entry_price * (1 + self.take_profit_pct / 100):
                ctx.log.info("take profit at %.8g (average entry %.8g)", close, ctx.entry_price)
                ctx.sell()
                state["buys"] = 0
                return
            if state.get("buys", 0) < self.max_buys and close <= state["last_buy"] * (1 - self.step_pct / 100):
                self._buy(ctx, close)
            return
        state["buys"] = 0
        if "stake" not in state:
            state["stake"] = ctx.cash  # the slice size is a share of the starting stake
        self._buy(ctx, close)

    def _buy(self, ctx, close):
        amount = min(ctx.cash, ctx.state["stake"] * self.slice_pct / 100)
        if amount <= 0:
            return
        ctx.buy(amount)
        ctx.state["buys"] = ctx.state.get("buys", 0) + 1
        ctx.state["last_buy"] = close
        ctx.log.info("buy slice %d for %.2f at about %.8g", ctx.state["buys"], amount, close)
