"""``tradefleet backtest``: a strategy over a candle CSV, with metrics and the trade list."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def backtest(
    strategy: str = typer.Argument(..., help="strategy name, from STRATEGIES_DIR (e.g. sma_cross)"),
    candles: Path = typer.Option(..., "--candles", help="candle CSV, gzip or plain: timestamp,open,high,low,close,volume"),
    symbol: str = typer.Option("BTC/USDT", help="the market the candles are from (a label in the report)"),
    timeframe: Optional[str] = typer.Option(None, help="candle timeframe, e.g. 1h (default: the candles' spacing)"),
    param: list[str] = typer.Option([], "--param", help="strategy parameter name=value, repeatable; JSON values"),
    stake: float = typer.Option(10_000.0, help="starting balance, quote currency"),
    fee: float = typer.Option(0.001, help="taker fee rate per fill (0.001 = 0.1 %)"),
    amount_step: Optional[float] = typer.Option(None, help="amount precision, base currency (default: none)"),
    min_cost: Optional[float] = typer.Option(None, help="minimum order value, quote currency"),
    start: Optional[str] = typer.Option(None, help="first candle, ISO 8601 (UTC unless zoned)"),
    end: Optional[str] = typer.Option(None, help="end of the range (exclusive), ISO 8601"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: metrics, trades, lookahead"),
    no_lookahead: bool = typer.Option(False, "--no-lookahead", help="skip the look-ahead check"),
) -> None:
    """Backtest a strategy on a candle CSV: metrics and the trade list (fills at the next candle's open)."""
    import json

    from tradefleet.backtest import BacktestError, load_csv, run_backtest
    from tradefleet.strategy.params import ParamError
    from tradefleet.sandbox.registry import UnknownStrategy, get_registry

    def fail(message: str) -> None:
        typer.echo(f"error: {' '.join(str(message).split())}", err=True)
        raise typer.Exit(2)

    raw: dict[str, object] = {}
    for item in param:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            fail(f"--param {item!r}: expected name=value")
        try:
            raw[name.strip()] = json.loads(text)
        except ValueError:
            raw[name.strip()] = text
    registry = get_registry()
    try:
        strategy_cls = registry.get(strategy)
    except UnknownStrategy:
        known = ", ".join(k.name for k in registry.all()) or "none"
        fail(f"unknown strategy {strategy!r} (available: {known})")
    try:
        params = strategy_cls.validate_params(raw)
    except ParamError as exc:
        fail(f"invalid parameter {exc.field}: {exc.message}")
    try:
        data = load_csv(candles)
        result = run_backtest(strategy_cls, data, params=params, stake=stake, fee=fee, amount_step=amount_step,
                              min_cost=min_cost, timeframe=timeframe, start=start, end=end,
                              lookahead=not no_lookahead)
    except (BacktestError, ParamError) as exc:
        fail(str(exc))
    if as_json:
        out = {"symbol": symbol, **result.to_dict()}
        typer.echo(json.dumps(out, allow_nan=False))
        return

    typer.echo(f"{result.strategy} {symbol} {result.timeframe}  {result.to_dict()['start']} to "
               f"{result.to_dict()['end']}  params {json.dumps(result.params)}  stake {stake:g}  fee {fee:g}")
    width = max(len(k) for k in result.metrics)
    for key, value in result.metrics.items():
        shown = "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
        typer.echo(f"  {key.ljust(width)}  {shown}")
    if result.lookahead is not None:
        if result.lookahead.flagged:
            first = result.lookahead.mismatches[0]
            typer.echo(f"  LOOK-AHEAD: signals change when the future is cut off ({len(result.lookahead.mismatches)} "
                       f"mismatches, first {first[1]} at {first[0]}); these results cannot be trusted")
        else:
            typer.echo(f"  look-ahead check: passed ({len(result.lookahead.checked)} sampled candles)")
    header = ("entry time", "exit time", "entry price", "exit price", "amount", "pnl", "pnl %", "exit")
    rows = [(t["entry_time"], t["exit_time"] or "(open)", f"{t['entry_price']:.8g}",
             "-" if t["exit_price"] is None else f"{t['exit_price']:.8g}", f"{t['amount']:.8g}",
             f"{t['pnl']:.2f}", f"{t['pnl_pct']:.2f}", t["exit_reason"] or "open") for t in result.trades]
    typer.echo(f"\n{len(rows)} trades")
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            typer.echo("  ".join(c.rjust(w) if 2 <= i <= 6 else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))).rstrip())
