"""``tradefleet dev``: the whole platform on this machine, with the local secrets it generates."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import typer

from tradefleet.cli.data import DEFAULT_DATA_DIR, data_import
from tradefleet.cli.database import demo, migrate, refresh_markets
from tradefleet.config import REPO_ROOT, get_settings


DEMO_SIM_ACCOUNTS = "sim-demo-accounts.json"
"""Under ``var/``: the simulator's demo account of ``make run`` (made once, kept across restarts)."""


def _demo_sim_accounts() -> Path:
    """``var/sim-demo-accounts.json``: one simulated Binance account (10,000 USDT; read and trade, no
    withdrawals) whose keys a demo trader can add to go live against the simulator. The keys are random,
    made on first use and kept (mode 0600), and only ever open the local simulator."""
    import secrets as token_source

    path = REPO_ROOT / "var" / DEMO_SIM_ACCOUNTS
    if not path.exists():
        spec = [{"api_key": "demo" + token_source.token_hex(16), "secret": token_source.token_hex(24),
                 "balances": {"USDT": 10_000},
                 "permissions": {"read": True, "trade": True, "withdraw": False, "ip_restrict": False}}]
        path.write_text(json.dumps(spec, indent=2))
        path.chmod(0o600)
    return path


def dev(
    sim: bool = typer.Option(True, help="start the exchange simulator and point binance at it"),
    sim_port: int = typer.Option(8100),
    speed: float = typer.Option(60.0, help="simulator speed"),
    api_port: int = typer.Option(8000),
    seed_demo: bool = typer.Option(True, "--demo/--no-demo", help="create the demo account and run"),
) -> None:
    """The whole platform on this machine: migrate, simulator, API, the tick worker, the backtest worker
    (niced) and beat. Ctrl-C stops all.

    Uses SQLite and kombu's SQLAlchemy transport unless DATABASE_URL and REDIS_URL are set. On first
    start it generates a JWT secret, a TOTP key and the vault's key pair into var/ (mode 0600) and
    reuses them; only the tick worker gets the vault's private key.
    """
    from tradefleet.devstack import Stack

    if sim and not os.environ.get("EXCHANGE_API_URLS"):
        os.environ["EXCHANGE_API_URLS"] = f'{{"binance": "http://127.0.0.1:{sim_port}"}}'
    worker_env = local_secrets_env()
    settings = get_settings()

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    stack = Stack(worker_env=worker_env)
    try:
        typer.echo(f"database: {_redact(settings.DATABASE_URL)}; broker: {_redact(settings.broker_url)}")
        migrate("head")
        if sim:
            accounts = _demo_sim_accounts() if seed_demo else None
            url = stack.simulator(port=sim_port, speed=speed, accounts=accounts)
            typer.echo(f"exchange simulator on {url} at {speed:g}x")
        refresh_markets()
        recorded = sorted(DEFAULT_DATA_DIR.glob("*.csv.gz"))
        typer.echo(f"storing {len(recorded)} recorded candle files for backtests (already stored ones are skipped)")
        data_import(recorded, exchange="binance", symbol=None, timeframe=None)
        # Without Redis the cache lives in process memory and SQLite has one writer: one tick worker
        # process. Backtests, downloads and validations have their own niced worker: they never delay a tick.
        stack.worker(concurrency=2 if settings.REDIS_URL else 1, name="tradefleet")
        stack.backtest_worker(name="tradefleet-backtests")
        stack.beat(schedule_file=REPO_ROOT / "var" / "celerybeat-schedule")
        url = stack.api(port=api_port)
        if seed_demo:
            demo()
            if sim:
                key = json.loads((REPO_ROOT / "var" / DEMO_SIM_ACCOUNTS).read_text())[0]
                typer.echo(f"simulated Binance account for live runs (add it on the Keys page, exchange binance): "
                           f"API key {key['api_key']}, secret {key['secret']}")
        typer.echo(f"\nTradefleet is up: {url}/ (API docs at {url}/api/v1/docs). Ctrl-C stops it.")
        parent = os.getppid()
        while True:
            stack.check_alive()
            if os.getppid() != parent:  # whoever started us (make) is gone: stop, leave no orphans
                raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("\nstopping...")
    except RuntimeError as exc:
        typer.echo(f"{exc}; stopping everything", err=True)
        raise typer.Exit(1) from None
    finally:
        stack.stop()


def local_secrets_env(var_dir: Path | None = None) -> dict[str, str]:
    """Prepare this process's environment for ``tradefleet dev`` and return the worker's extra
    environment: files under ``var/`` private (umask 077 for every child, the SQLite database and
    broker files 0600), and the checkout's generated secrets
    (:func:`tradefleet.security.local_secrets.ensure_local_secrets`) used wherever the environment
    and ``.env`` give none: ``JWT_SECRET_KEY`` (also when it is an example value), ``TOTP_ENCRYPTION_KEY``
    and ``VAULT_PUBLIC_KEYS`` for every process; the vault's private key file
    (``VAULT_PRIVATE_KEYS_FILE``) only in the returned worker environment."""
    from tradefleet.config import example_secrets
    from tradefleet.security.local_secrets import VAR_DIR, ensure_local_secrets
    from tradefleet.security.secret_files import make_private

    os.umask(0o077)
    local = ensure_local_secrets(var_dir or VAR_DIR)
    get_settings.cache_clear()
    settings = get_settings()
    worker_env: dict[str, str] = {}
    if settings.JWT_SECRET_KEY_FILE is None and any(p.startswith("JWT_SECRET_KEY:") for p in example_secrets(settings)):
        if "JWT_SECRET_KEY" in settings.model_fields_set:
            typer.echo("JWT_SECRET_KEY is an example value: signing with the generated secret of var/ instead")
        os.environ["JWT_SECRET_KEY"] = local.jwt_secret
    if not settings.TOTP_ENCRYPTION_KEY:
        os.environ["TOTP_ENCRYPTION_KEY"] = local.totp_key
    if not settings.VAULT_PUBLIC_KEYS:
        os.environ["VAULT_PUBLIC_KEYS"] = local.vault_public_key
        if not settings.VAULT_PRIVATE_KEYS and settings.VAULT_PRIVATE_KEYS_FILE is None:
            worker_env["VAULT_PRIVATE_KEYS_FILE"] = str(local.vault_private_file)
    get_settings.cache_clear()
    settings = get_settings()
    files = []
    if settings.is_sqlite and settings.DATABASE_URL.startswith("sqlite:///"):
        files.append(Path(settings.DATABASE_URL[len("sqlite:///"):]))
    if settings.broker_url.startswith("sqla+sqlite:///"):
        files.append(Path(settings.broker_url[len("sqla+sqlite:///"):]))
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        make_private(path)
    return worker_env


def _redact(url: str) -> str:
    """A URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL (redis://...)
        return url.split("@")[-1]
