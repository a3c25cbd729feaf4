"""``tradefleet data import | download | list`` through typer's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from candle_helpers import BTC_1H, DATA_DIR, MAR_1, write_csv
from typer.testing import CliRunner

from tradefleet.cli import app

ETH_1H = DATA_DIR / "binance_spot_ETHUSDT_1h_2024-01_2024-09.csv.gz"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str):
    return runner.invoke(app, ["data", *args], catch_exceptions=False)


def test_import_then_list(db, runner, tmp_path):
    first = run(runner, "import", str(BTC_1H))
    assert first.exit_code == 0, first.output
    assert "binance BTC/USDT 1h: 5980 rows read, 5980 stored, 0 updated, 0 duplicates, 0 gaps" in first.stdout

    plain = write_csv(tmp_path / "candles.csv", "timestamp,open,high,low,close,volume\n"
                      "1704067200000,1,2,0.5,1.5,10\n1704074400000,1.5,2,1,1.8,12\n")
    second = run(runner, "import", str(ETH_1H), str(plain), "--symbol", "ADA/USDT", "--timeframe", "1h")
    assert second.exit_code == 0, second.output
    assert "binance ADA/USDT 1h: 5980 rows read, 5980 stored" in second.stdout  # --symbol applies to every path
    assert "candles.csv: binance ADA/USDT 1h: 2 rows read, 0 stored, 2 updated, 0 duplicates, 0 gaps" \
        in second.stdout
    third = run(runner, "import", str(plain), "--symbol", "eth/usdt", "--timeframe", "1h", "--exchange", "kraken")
    assert "candles.csv: kraken ETH/USDT 1h: 2 rows read, 2 stored, 0 updated, 0 duplicates, 1 gaps (1 candles missing)" \
        in third.stdout

    again = run(runner, "import", str(BTC_1H))
    assert "5980 rows read, 0 stored, 0 updated, 5980 duplicates" in again.stdout

    listing = run(runner, "list")
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["exchange", "symbol", "timeframe", "first", "last", "candles", "gaps", "missing"]
    assert lines[1].split()[:3] == ["binance", "ADA/USDT", "1h"] and lines[1].split()[-3:] == ["5980", "0", "0"]
    assert lines[2].split() == ["binance", "BTC/USDT", "1h", "2024-01-01", "00:00", "2024-09-06", "03:00", "5980", "0", "0"]
    assert lines[3].split() == ["kraken", "ETH/USDT", "1h", "2024-01-01", "00:00", "2024-01-01", "02:00", "2", "1", "1"]


def test_list_when_empty(db, runner):
    result = run(runner, "list")
    assert result.exit_code == 0 and "no candles stored" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["import", "/nonexistent/binance_spot_BTCUSDT_1h_2024-01.csv.gz"], "no such file"),
    (["import", "__BAD__"], "line 3: duplicate timestamp 1704067200000"),
    (["import", "__BAD__", "--timeframe", "1M"], "unsupported timeframe"),
    (["download", "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "last tuesday"], "--since"),
    (["download", "--exchange", "nope", "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2024-01-01"],
     "unknown exchange"),
    (["download", "--symbol", "NOPE/USDT", "--timeframe", "1h", "--since", "2024-01-01"], "BadSymbol"),
])
def test_errors_exit_2_with_one_line(db, exchange_sim, runner, tmp_path, args, message):
    bad = write_csv(tmp_path / "binance_spot_BTCUSDT_1h_2024-01.csv",
                    "timestamp,open,high,low,close,volume\n1704067200000,1,2,0.5,1,1\n1704067200000,1,2,0.5,1,1\n")
    result = run(runner, *[str(bad) if a == "__BAD__" else a for a in args])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_download_with_progress_then_list(db, exchange_sim, runner):
    exchange_sim.clock.set(MAR_1)
    result = run(runner, "download", "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h",
                 "--since", "2024-01-01", "--until", "2024-02-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert ("binance BTC/USDT 1h: 1 pages, 744 candles received, 744 stored, 0 updated, 0 duplicates, 0 gaps"
            in result.stdout)
    assert "744/744" in result.stderr  # tqdm's bar, on stderr

    rest = run(runner, "download", "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2024-01-01")
    assert "2 pages, 1440 candles received, 696 stored, 0 updated, 744 duplicates" in rest.stdout
    assert len(exchange_sim.klines_requests()) == 3

    listing = run(runner, "list")
    assert listing.stdout.splitlines()[1].split() == [
        "binance", "BTC/USDT", "1h", "2024-01-01", "00:00", "2024-02-29", "23:00", "1440", "0", "0"]
