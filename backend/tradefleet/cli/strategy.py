"""``tradefleet strategy check``: one strategy file checked before it goes into STRATEGIES_DIR."""

from __future__ import annotations

from pathlib import Path

import typer

from tradefleet.cli.data import DEFAULT_DATA_DIR

strategy_app = typer.Typer(help="Strategy files: check one before putting it in STRATEGIES_DIR.",
                           no_args_is_help=True)

CHECK_CANDLES = DEFAULT_DATA_DIR / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"
CHECK_METRICS = ("total_return_pct", "max_drawdown_pct", "sharpe", "sortino", "win_rate_pct", "profit_factor",
                 "exposure_pct", "final_equity")


@strategy_app.command("check")
def strategy_check(
    file: Path = typer.Argument(..., help="the strategy's .py file (it need not be in STRATEGIES_DIR)"),
    candles: Path = typer.Option(CHECK_CANDLES, "--candles", help="candle CSV for the short backtest (gzip or plain)"),
    stake: float = typer.Option(10_000.0, help="starting balance of the backtest, quote currency"),
    fee: float = typer.Option(0.001, help="taker fee rate per fill"),
) -> None:
    """Load one strategy file in a sandboxed runner and check it (the suite uploads pass too): the
    strategy's name, description and parameters, a backtest with the default parameters, and the
    look-ahead check.

    Exit code 0 when everything passes; 1 when the file does not load, a backtest fails or the strategy
    looks ahead; 2 for a missing file, unreadable candles or no sandbox on this machine.
    """
    from tradefleet.backtest import BacktestError, load_csv
    from tradefleet.sandbox import SandboxUnavailable, StrategyLoadError, load_strategy
    from tradefleet.backtest.check import check_strategy, describe_params

    def usage(message: str) -> None:
        typer.echo(f"error: {' '.join(str(message).split())}", err=True)
        raise typer.Exit(2)

    def shown(value: object) -> str:
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    if not file.is_file() or file.suffix != ".py":
        usage(f"{file}: not a .py file")
    try:
        # The operator's own file, like those of STRATEGIES_DIR: sandboxed, or unsandboxed where the
        # operator allowed that for bundled files.
        proxy = load_strategy(file.read_bytes(), label=file.name, trusted=True)
    except StrategyLoadError as exc:
        typer.echo(f"FAIL {file.name} does not load: {' '.join(exc.message.split())}")
        raise typer.Exit(1) from None
    except SandboxUnavailable as exc:
        usage(f"cannot run strategy code here: {exc}")
    try:
        data = load_csv(candles)
    except BacktestError as exc:
        usage(str(exc))

    report = check_strategy(proxy, candles=data, stake=stake, fee=fee)
    typer.echo(f"{proxy.name} ({proxy.manifest.class_name}, timeframe {proxy.timeframe})")
    typer.echo(f"  {proxy.description() or '(no description: write a class docstring)'}")
    lines = describe_params(proxy.params_schema())
    typer.echo("  parameters:" + ("" if lines else " none"))
    for line in lines:
        typer.echo(f"    {line}")
    failed = [s for s in report.steps if not s.ok]
    for step in failed:
        if step.name == "parameters":
            typer.echo(f"  FAIL parameters: {step.message}")
        elif step.name == "backtest":
            typer.echo(f"  FAIL {step.message}")
    result = report.result
    if result is not None:
        summary = result.to_dict()
        typer.echo(f"  backtest with the default parameters on {candles.name}, {summary['start']} to "
                   f"{summary['end']} ({len(result.equity)} candles):")
        typer.echo(f"    {'trades'.ljust(18)}  {result.metrics['trades']}")
        for key in CHECK_METRICS:
            typer.echo(f"    {key.ljust(18)}  {shown(result.metrics.get(key))}")
        look = result.lookahead
        if look is None:
            typer.echo("  look-ahead check: not applicable (no signals(); on_candle sees only closed candles)")
        elif look.flagged:
            typer.echo(f"  FAIL look-ahead: {len(look.mismatches)} sampled signals change when the future is "
                       "cut off (the strategy reads candles after the one it decides on):")
            for when, column, full, truncated in look.mismatches[:20]:
                typer.echo(f"    {when} {column}: {full} with the full history, {truncated} without the future")
        else:
            typer.echo(f"  look-ahead check: passed ({len(look.checked)} sampled candles)")
    if not report.ok:
        typer.echo(f"FAIL {file.name}: 1 of 1 strategies failed")
        raise typer.Exit(1)
    typer.echo(f"OK {file.name}: 1 strategy checked")
