"""The ``tradefleet`` command: dev stack, migrations, the exchange simulator, market catalog, demo."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from tradefleet.config import REPO_ROOT, get_settings

app = typer.Typer(help="Tradefleet: run trading strategies for many users on one machine.", no_args_is_help=True)

DEFAULT_DATA_DIR = REPO_ROOT / "data" / "ohlcv"


@app.command()
def migrate(revision: str = typer.Argument("head", help="Alembic revision to upgrade to")) -> None:
    """Bring the database of DATABASE_URL to the latest schema."""
    from tradefleet.migrations import upgrade

    upgrade(revision)
    typer.echo(f"database migrated to {revision}")


def _parse_start(value: Optional[str]) -> Optional[int]:
    if not value:
        return None
    if value.isdigit():
        return int(value)
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        raise typer.BadParameter("give a timezone, e.g. 2024-01-02T00:00:00Z")
    return int(stamp.timestamp() * 1000)


@app.command("exchange-sim")
def exchange_sim(
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, help="folder of recorded candles (*.csv.gz)"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8100),
    speed: float = typer.Option(60.0, help="simulated seconds per wall second"),
    start: Optional[str] = typer.Option(None, help="clock start, ISO UTC or epoch ms (default: first candle)"),
) -> None:
    """Replay recorded candles behind Binance's spot REST API (point ccxt at it with EXCHANGE_API_URLS)."""
    from tradefleet.sim.server import serve

    serve(data_dir=data_dir, host=host, port=port, speed=speed, start_ms=_parse_start(start))


@app.command("refresh-markets")
def refresh_markets() -> None:
    """Load every enabled exchange's markets through ccxt into the catalog."""
    from tradefleet.db import session_scope
    from tradefleet.market.catalog import refresh_catalog

    for exchange_id in get_settings().EXCHANGES_ENABLED:
        with session_scope() as session:
            count = refresh_catalog(session=session, exchange_id=exchange_id)
        typer.echo(f"{exchange_id}: {count} spot markets")


@app.command()
def demo() -> None:
    """Create the demo account with a running paper sma_cross run on BTC/USDT 1m."""
    from tradefleet.db import session_scope
    from tradefleet.services.demo import ensure_demo

    with session_scope() as session:
        user, run = ensure_demo(session=session)
    settings = get_settings()
    typer.echo(f"demo account: {user.email} / {settings.DEMO_PASSWORD.get_secret_value()}")
    typer.echo(f"demo run: {run.id} ({run.strategy} {run.symbol} {run.timeframe}, {run.status.value})")


@app.command()
def dev(
    sim: bool = typer.Option(True, help="start the exchange simulator and point binance at it"),
    sim_port: int = typer.Option(8100),
    speed: float = typer.Option(60.0, help="simulator speed"),
    api_port: int = typer.Option(8000),
    seed_demo: bool = typer.Option(True, "--demo/--no-demo", help="create the demo account and run"),
) -> None:
    """The whole platform on this machine: migrate, simulator, API, a worker and beat. Ctrl-C stops all.

    Uses SQLite and kombu's SQLAlchemy transport unless DATABASE_URL and REDIS_URL are set.
    """
    from tradefleet.devstack import Stack

    if sim and not os.environ.get("EXCHANGE_API_URLS"):
        os.environ["EXCHANGE_API_URLS"] = f'{{"binance": "http://127.0.0.1:{sim_port}"}}'
    get_settings.cache_clear()
    settings = get_settings()
    (REPO_ROOT / "var").mkdir(exist_ok=True)

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    stack = Stack()
    try:
        typer.echo(f"database: {_redact(settings.DATABASE_URL)}; broker: {_redact(settings.broker_url)}")
        migrate("head")
        if sim:
            url = stack.simulator(port=sim_port, speed=speed)
            typer.echo(f"exchange simulator on {url} at {speed:g}x")
        refresh_markets()
        # Without Redis the cache lives in process memory and SQLite has one writer: one worker process.
        stack.worker(concurrency=2 if settings.REDIS_URL else 1, name="tradefleet")
        stack.beat(schedule_file=REPO_ROOT / "var" / "celerybeat-schedule")
        url = stack.api(port=api_port)
        if seed_demo:
            demo()
        typer.echo(f"\nTradefleet is up: {url}/ (API docs at {url}/api/v1/docs). Ctrl-C stops it.")
        while True:
            stack.check_alive()
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("\nstopping...")
    except RuntimeError as exc:
        typer.echo(f"{exc}; stopping everything", err=True)
        raise typer.Exit(1) from None
    finally:
        stack.stop()


def _redact(url: str) -> str:
    """A URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL (redis://...)
        return url.split("@")[-1]


if __name__ == "__main__":
    app()
