"""``tradefleet exchange-sim``: the exchange simulator as a server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from tradefleet.cli.data import DEFAULT_DATA_DIR


def _parse_start(value: Optional[str]) -> Optional[int]:
    from tradefleet.times import datetime_ms

    if not value:
        return None
    if value.isdigit():
        return int(value)
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        raise typer.BadParameter("give a timezone, e.g. 2024-01-02T00:00:00Z")
    return datetime_ms(stamp)


def exchange_sim(
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, help="folder of recorded candles (*.csv.gz)"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8100),
    speed: float = typer.Option(60.0, help="simulated seconds per wall second"),
    start: Optional[str] = typer.Option(None, help="clock start, ISO UTC or epoch ms (default: first candle)"),
    accounts: Optional[Path] = typer.Option(
        None, help='JSON list of accounts [{"api_key", "secret", "balances": {"USDT": 10000}, "permissions"}]'),
    state_file: Optional[Path] = typer.Option(None, help="JSON file keeping accounts, orders and trades across restarts"),
    enforce_rate_limits: bool = typer.Option(False, help="429 like Binance over 6000 weight/min or 100 orders/10 s"),
) -> None:
    """Replay recorded candles behind Binance's spot REST API (point ccxt at it with EXCHANGE_API_URLS)."""
    from tradefleet.sim.accounts import AccountSpecError
    from tradefleet.sim.server import serve

    try:
        serve(data_dir=data_dir, host=host, port=port, speed=speed, start_ms=_parse_start(start),
              accounts_file=accounts, state_file=state_file, enforce_rate_limits=enforce_rate_limits)
    except (AccountSpecError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
