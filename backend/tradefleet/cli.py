"""The ``tradefleet`` command: dev stack, migrations, the exchange simulator, market catalog, demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import httpx
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


def _wait_http(url: str, timeout_s: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout_s} s")


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
    env = dict(os.environ)
    if sim and not env.get("EXCHANGE_API_URLS"):
        env["EXCHANGE_API_URLS"] = f'{{"binance": "http://127.0.0.1:{sim_port}"}}'
    os.environ.update(env)
    get_settings.cache_clear()
    settings = get_settings()
    (REPO_ROOT / "var").mkdir(exist_ok=True)
    bindir = Path(sys.executable).parent
    procs: list[subprocess.Popen] = []

    def spawn(*args: str) -> subprocess.Popen:
        # Own process group, so Ctrl-C reaches each child once, through us.
        proc = subprocess.Popen(list(args), env=env, cwd=REPO_ROOT, start_new_session=True)
        procs.append(proc)
        return proc

    def stop_all(*_: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        typer.echo(f"database: {settings.DATABASE_URL.split('@')[-1]}; broker: {settings.broker_url.split('@')[-1]}")
        migrate("head")
        if sim:
            spawn(str(bindir / "tradefleet"), "exchange-sim", "--port", str(sim_port), "--speed", str(speed))
            _wait_http(f"http://127.0.0.1:{sim_port}/api/v3/ping", 60, procs)
            typer.echo(f"exchange simulator on http://127.0.0.1:{sim_port} at {speed:g}x")
        refresh_markets()
        # Without Redis the cache lives in process memory and SQLite has one writer: one worker process.
        concurrency = "2" if settings.REDIS_URL else "1"
        spawn(str(bindir / "celery"), "-A", "tradefleet.worker.app", "worker", "-Q", "schedule,evaluate,default",
              "--concurrency", concurrency, "--loglevel", "INFO", "-n", "tradefleet@%h")
        spawn(str(bindir / "celery"), "-A", "tradefleet.worker.app", "beat", "--loglevel", "INFO",
              "-s", str(REPO_ROOT / "var" / "celerybeat-schedule"))
        spawn(str(bindir / "uvicorn"), "tradefleet.api.main:app", "--host", "127.0.0.1", "--port", str(api_port))
        _wait_http(f"http://127.0.0.1:{api_port}/api/v1/health", 60, procs)
        if seed_demo:
            demo()
        typer.echo(f"\nTradefleet is up: http://127.0.0.1:{api_port}/ (API docs at /api/v1/docs). Ctrl-C stops it.")
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        failed = [p for p in procs if p.poll() is not None]
        typer.echo(f"{failed[0].args[0]} exited with {failed[0].returncode}; stopping everything", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("\nstopping...")
    finally:
        stop_all()


if __name__ == "__main__":
    app()
