"""``tradefleet data ...``: historical candles (import CSV files, download through ccxt, list what is stored)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from tradefleet.config import REPO_ROOT

DEFAULT_DATA_DIR = REPO_ROOT / "data" / "ohlcv"

data_app = typer.Typer(help="Historical candles: import CSV files, download through ccxt, list what is stored.",
                       no_args_is_help=True)


def _data_fail(message: str) -> None:
    """Print a one-line error on stderr and exit with code 2 (no traceback)."""
    line = " ".join(str(message).split())
    typer.echo(f"error: {line[:500]}", err=True)
    raise typer.Exit(2)


def _data_time_ms(value: str, option: str) -> int:
    """``--since``/``--until``: epoch ms, or an ISO date or datetime (UTC unless it has a zone)."""
    from datetime import UTC

    from tradefleet.times import datetime_ms

    if value.isdigit():
        return int(value)
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _data_fail(f"{option} {value!r}: give a date (2024-01-01), an ISO datetime or epoch ms")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return datetime_ms(stamp)


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
    from tradefleet.market.candle_download import DownloadReport, download
    from tradefleet.market.store import CandleDataError

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
