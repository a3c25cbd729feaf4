"""The ``tradefleet`` command: dev stack, migrations, the exchange simulator, market catalog, demo."""

from __future__ import annotations

import json
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


@app.command("refresh-markets")
def refresh_markets() -> None:
    """Load every enabled exchange's markets through ccxt into the catalog."""
    from tradefleet.db import session_scope
    from tradefleet.market.catalog import refresh_catalog

    for exchange_id in get_settings().EXCHANGES_ENABLED:
        with session_scope() as session:
            count = refresh_catalog(session=session, exchange_id=exchange_id)
        typer.echo(f"{exchange_id}: {count} spot markets")


# --- historical candles: tradefleet data ... ----------------------------------------------------

data_app = typer.Typer(help="Historical candles: import CSV files, download through ccxt, list what is stored.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _data_fail(message: str) -> None:
    """Print a one-line error on stderr and exit with code 2 (no traceback)."""
    line = " ".join(str(message).split())
    typer.echo(f"error: {line[:500]}", err=True)
    raise typer.Exit(2)


def _data_time_ms(value: str, option: str) -> int:
    """``--since``/``--until``: epoch ms, or an ISO date or datetime (UTC unless it has a zone)."""
    from datetime import UTC

    if value.isdigit():
        return int(value)
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _data_fail(f"{option} {value!r}: give a date (2024-01-01), an ISO datetime or epoch ms")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def _data_time_str(ms: Optional[int]) -> str:
    from datetime import UTC

    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@data_app.command("import")
def data_import(
    paths: list[Path] = typer.Argument(..., help="candle CSV files (gzip or plain): timestamp,open,high,low,close,volume"),
    exchange: str = typer.Option("binance", help="exchange the candles come from"),
    symbol: Optional[str] = typer.Option(None, help="e.g. BTC/USDT (default: from the file name)"),
    timeframe: Optional[str] = typer.Option(None, help="e.g. 1h (default: from the file name)"),
) -> None:
    """Import candle CSV files into the database; candles already stored are not duplicated."""
    from sqlalchemy.exc import SQLAlchemyError

    from tradefleet.db import session_scope
    from tradefleet.market.store import CandleDataError, import_csv

    for path in paths:
        try:
            with session_scope() as session:
                r = import_csv(session=session, path=path, exchange=exchange, symbol=symbol, timeframe=timeframe)
        except CandleDataError as exc:
            _data_fail(exc.detail)
        except SQLAlchemyError as exc:
            _data_fail(f"{path.name}: database error: {getattr(exc, 'orig', None) or exc}")
        missing = sum(g.missing for g in r.gaps)
        typer.echo(f"{path.name}: {r.exchange} {r.symbol} {r.timeframe}: {r.rows} rows read, {r.stored} stored, "
                   f"{r.updated} updated, {r.duplicates} duplicates, {len(r.gaps)} gaps ({missing} candles missing), "
                   f"{_data_time_str(r.first_ms)} to {_data_time_str(r.last_ms)} in {r.seconds:.2f} s")


@data_app.command("download")
def data_download(
    exchange: str = typer.Option("binance", help="ccxt exchange id"),
    symbol: str = typer.Option(..., help="e.g. BTC/USDT"),
    timeframe: str = typer.Option(..., help="e.g. 1h"),
    since: str = typer.Option(..., help="first candle: date (UTC), ISO datetime or epoch ms"),
    until: Optional[str] = typer.Option(None, help="stop before this time (default: the last closed candle)"),
) -> None:
    """Download closed candles through ccxt (paginated, rate-limited, retried) into the database."""
    import sys

    from sqlalchemy.exc import SQLAlchemyError
    from tqdm import tqdm

    from tradefleet.db import session_scope
    from tradefleet.market.exchange import ExchangeError, UnknownExchange
    from tradefleet.market.store import CandleDataError, DownloadReport, download

    since_ms = _data_time_ms(since, "--since")
    until_ms = _data_time_ms(until, "--until") if until else None
    bars: list[tqdm] = []  # made at the first page, once the number of candles is known
    latest: list[DownloadReport] = []

    def progress(report: DownloadReport) -> None:
        if not bars:
            bars.append(tqdm(desc=f"{report.symbol} {report.timeframe}", total=report.expected, unit="candle",
                             file=sys.stderr, dynamic_ncols=True))
            latest.append(report)
        bars[0].n = report.done
        bars[0].refresh()

    def close_bar() -> None:
        for bar in bars:
            bar.close()

    try:
        with session_scope() as session:
            r = download(session=session, exchange_id=exchange, symbol=symbol, timeframe=timeframe,
                         since_ms=since_ms, until_ms=until_ms, progress=progress)
    except KeyboardInterrupt:
        close_bar()
        stored = latest[0].stored if latest else 0
        typer.echo(f"interrupted: {stored} new candles were stored; run it again to continue", err=True)
        raise typer.Exit(130) from None
    except (CandleDataError, UnknownExchange) as exc:
        close_bar()
        _data_fail(getattr(exc, "detail", None) or str(exc))
    except ExchangeError as exc:
        close_bar()
        _data_fail(f"{exchange}: {type(exc).__name__}: {exc}")
    except SQLAlchemyError as exc:
        close_bar()
        _data_fail(f"database error: {getattr(exc, 'orig', None) or exc}")
    close_bar()
    missing = sum(g.missing for g in r.gaps)
    typer.echo(f"{r.exchange} {r.symbol} {r.timeframe}: {r.pages} pages, {r.received} candles received, "
               f"{r.stored} stored, {r.updated} updated, {r.duplicates} duplicates, {len(r.gaps)} gaps "
               f"({missing} candles missing), {_data_time_str(r.start_ms)} to {_data_time_str(r.last_ms)}")


@data_app.command("list")
def data_list() -> None:
    """The stored candle series with their ranges, counts and gaps."""
    from sqlalchemy.exc import SQLAlchemyError

    from tradefleet.db import session_scope
    from tradefleet.market.store import find_gaps, list_series

    try:
        with session_scope() as session:
            rows = []
            for s in list_series(session):
                gaps = find_gaps(session=session, exchange=s.exchange, symbol=s.symbol,
                                 timeframe=s.timeframe) if s.missing else []
                rows.append((s.exchange, s.symbol, s.timeframe, _data_time_str(s.first_ms),
                             _data_time_str(s.last_ms), str(s.count), str(len(gaps)), str(s.missing)))
    except SQLAlchemyError as exc:
        _data_fail(f"database error: {getattr(exc, 'orig', None) or exc}")
    if not rows:
        typer.echo("no candles stored (tradefleet data import / tradefleet data download)")
        return
    header = ("exchange", "symbol", "timeframe", "first", "last", "candles", "gaps", "missing")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.rjust(w) if i >= 5 else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(row, widths))).rstrip())


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


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., help="the admin's e-mail"),
    password: Optional[str] = typer.Option(None, help="at least 10 characters; prompted (hidden) when omitted"),
    promote_existing: bool = typer.Option(
        False, "--promote-existing",
        help="if the e-mail already has an account, take it over as admin: set this password, mark the "
             "address verified, remove its 2FA and sign out every session"),
) -> None:
    """Create a verified admin account. An existing account is refused (exit 1) unless
    --promote-existing is given: anyone may have registered the address first."""
    from pydantic import ValidationError

    from tradefleet.db import session_scope
    from tradefleet.services.users import AccountExists, promote_to_admin
    from tradefleet.services.users import create_admin as make_admin

    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as session:
            if promote_existing:
                try:
                    user, actions = promote_to_admin(session=session, email=email, password=password)
                except LookupError:
                    user, actions = make_admin(session=session, email=email, password=password), None
            else:
                user, actions = make_admin(session=session, email=email, password=password), None
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: {fields}", err=True)
        raise typer.Exit(2) from None
    except AccountExists as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    if actions is None:
        typer.echo(f"created admin: {user.email} ({user.id})")
        return
    typer.echo(f"promoted to admin: {user.email} ({user.id})")
    for line in actions:
        typer.echo(f"  {line}")


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


@app.command()
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
    worker_env = _local_secrets_env()
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


def _local_secrets_env(var_dir: Path | None = None) -> dict[str, str]:
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


# --- strategy files: tradefleet strategy ... ------------------------------------------------------

strategy_app = typer.Typer(help="Strategy files: check one before putting it in STRATEGIES_DIR.",
                           no_args_is_help=True)
app.add_typer(strategy_app, name="strategy")

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


@app.command()
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


# --- the vault of exchange keys: tradefleet keys ... ----------------------------------------------

keys_app = typer.Typer(help="The vault of exchange API keys (VAULT_PUBLIC_KEYS, VAULT_PRIVATE_KEYS; see "
                       "SECRETS.md).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def keys_generate(
    totp: bool = typer.Option(False, "--totp", help="print a Fernet key for TOTP_ENCRYPTION_KEY instead"),
) -> None:
    """Print a new vault key pair: the public key goes first in VAULT_PUBLIC_KEYS of every process,
    the private key into VAULT_PRIVATE_KEYS of the workers only; then `keys rotate`."""
    if totp:
        from tradefleet.security.crypto import generate_key

        typer.echo(generate_key())
        return
    from tradefleet.security.vault import generate_key_pair

    pair = generate_key_pair()
    typer.echo(f"# vault key pair {pair.key_id}: the public key for every process, the private key for workers only")
    typer.echo(f"VAULT_PUBLIC_KEY={pair.public}")
    typer.echo(f"VAULT_PRIVATE_KEY={pair.private}")


def _report_rotation(report, *, legacy_only: bool) -> None:  # noqa: ANN001 - a RotationReport
    from tradefleet.security.vault import newest_key_id

    newest = newest_key_id()
    typer.echo(f"re-sealed {report.tokens} tokens of {report.accounts} exchange accounts to key {newest}; "
               f"{report.current} accounts were already sealed to it")
    if legacy_only and report.left_sealed:
        typer.echo(f"{report.left_sealed} accounts keep tokens sealed to an older public key (`keys rotate` "
                   "re-seals them)")
    typer.echo(f"re-encrypted {report.totp_secrets} two-factor secrets")
    if report.failed:
        typer.echo(f"error: {len(report.failed)} accounts have tokens that could not be opened (left unchanged):",
                   err=True)
        for account_id in report.failed:
            typer.echo(f"  {account_id}: {report.reasons.get(account_id, '')}", err=True)
    if report.failed_users:
        typer.echo(f"error: {len(report.failed_users)} users have two-factor secrets that no configured key "
                   f"opens (left unchanged): {', '.join(map(str, report.failed_users))}", err=True)
    if report.failed or report.failed_users:
        raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-seal every stored exchange key to the newest key of VAULT_PUBLIC_KEYS (opening the others
    with VAULT_PRIVATE_KEYS, and tokens of the symmetric vault with API_ENCRYPTION_KEYS), and
    re-encrypt every two-factor secret under the newest TOTP_ENCRYPTION_KEY.

    Exits 1 (changing none of them) for accounts with a token no given key opens, naming them."""
    from tradefleet.db import session_scope
    from tradefleet.security import vault

    try:
        vault.newest_key_id()
    except vault.VaultError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with vault.unlocked(), session_scope() as session:
        report = vault.rotate_all(session=session)
    _report_rotation(report, legacy_only=False)


@keys_app.command("migrate-sealed")
def keys_migrate_sealed() -> None:
    """Re-seal the exchange keys still encrypted by the symmetric vault (Fernet, API_ENCRYPTION_KEYS)
    to the newest key of VAULT_PUBLIC_KEYS, and re-encrypt two-factor secrets under the newest
    TOTP_ENCRYPTION_KEY. Needs no private key. Run once after upgrading, with API_ENCRYPTION_KEYS set
    for this command only; then remove API_ENCRYPTION_KEYS everywhere (SECRETS.md).

    Exits 1 (changing none of them) for accounts with a token no key of API_ENCRYPTION_KEYS opens."""
    from tradefleet.db import session_scope
    from tradefleet.security import vault

    try:
        vault.newest_key_id()
    except vault.VaultError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with session_scope() as session:
        report = vault.rotate_all(session=session, sealed=False)
    _report_rotation(report, legacy_only=True)


@keys_app.command("status")
def keys_status() -> None:
    """How many exchange accounts have every token sealed to each public key, and how many hold
    tokens of the symmetric vault or of several keys (read from the tokens; nothing is opened)."""
    from collections import Counter

    from sqlmodel import select

    from tradefleet.db import session_scope
    from tradefleet.models import ExchangeAccount
    from tradefleet.security import vault

    counts: Counter[str] = Counter()
    with session_scope() as session:
        for account in session.exec(select(ExchangeAccount)).all():
            tokens = [getattr(account, c) for c in vault.ENCRYPTED_COLUMNS if getattr(account, c)]
            ids = {vault.token_key_id(t) for t in tokens}
            if None in ids:
                counts["symmetric vault (run `keys migrate-sealed`)"] += 1
            elif len(ids) > 1:
                counts["several keys (run `keys rotate`)"] += 1
            else:
                counts[f"key {ids.pop()}"] += 1
    newest = vault.newest_key_id() if get_settings().VAULT_PUBLIC_KEYS else None
    typer.echo(f"newest public key: {newest or '(VAULT_PUBLIC_KEYS is not set)'}")
    if not counts:
        typer.echo("no exchange accounts")
    for what, count in sorted(counts.items()):
        typer.echo(f"{count:6d}  {what}{'  (newest)' if newest and what == f'key {newest}' else ''}")


if __name__ == "__main__":
    app()
