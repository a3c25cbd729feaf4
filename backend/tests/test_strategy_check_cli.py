"""``tradefleet strategy check FILE``: one file imported in isolation, its strategies described,
backtested with their defaults on recorded candles and checked for look-ahead; exit 1 on any problem."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradefleet.cli import app
from tradefleet.config import REPO_ROOT

SHIPPED = sorted((REPO_ROOT / "strategies").glob("*.py"))
BROKEN_DIR = Path(__file__).parent / "strategies_broken"
DATA = REPO_ROOT / "data" / "ohlcv"

CHEAT = '''
from tradefleet.strategy import IntParam, Strategy


class PeekNext(Strategy):
    """Deliberately cheating: buys when the next candle closes higher."""

    startup_candles = 1
    window = IntParam(3, low=1, high=10, help="unused")

    def signals(self, candles):
        close = candles["close"]
        nxt = close.shift(-1)
        return candles.assign(enter_long=(nxt > close).fillna(False), exit_long=(nxt < close).fillna(False))
'''

TWO_CLEAN = '''
from tradefleet.strategy import Strategy


class AlwaysIn(Strategy):
    """Buys on the first candle and holds."""

    def signals(self, candles):
        first = candles["close"].notna() & False
        first.iloc[0] = True
        return candles.assign(enter_long=first, exit_long=False)


class NeverTrades(Strategy):
    """Never enters."""

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
'''


@pytest.fixture
def check(tmp_path, settings_env):
    """``check(path, *options) -> Result``, with STRATEGIES_DIR pointing at an empty folder: the checked
    file is never in it."""
    empty = tmp_path / "empty-strategies"
    empty.mkdir()
    settings_env(STRATEGIES_DIR=str(empty))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["strategy", "check", *map(str, args)])


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_strategy_passes(check, path):
    result = check(path)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"OK {path.name}: 1 strategy checked" in out
    assert f"({''.join(w.title() for w in path.stem.split('_'))}, timeframe 1h)" in out
    assert "backtest with the default parameters on binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz" in out
    assert "2024-01-01T00:00:00Z to " in out
    for key in ("trades", "total_return_pct", "max_drawdown_pct", "sharpe", "win_rate_pct"):
        assert f"    {key} " in out
    assert "look-ahead check: passed (20 sampled candles)" in out or "look-ahead check: not applicable" in out
    assert "FAIL" not in out


def test_sma_cross_report_matches_a_direct_backtest(check):
    from tradefleet.backtest import load_csv, run_backtest
    from tradefleet.sandbox.registry import StrategyRegistry

    result = check(REPO_ROOT / "strategies" / "sma_cross.py")

    assert result.exit_code == 0, result.output
    registry = StrategyRegistry(REPO_ROOT / "strategies")
    registry.refresh()
    direct = run_backtest(registry.get("sma_cross"), load_csv(DATA / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"),
                          stake=10_000, fee=0.001)
    assert "sma_cross (SmaCross, timeframe 1h)" in result.stdout
    assert "Long when the fast SMA of the close crosses above the slow SMA" in result.stdout
    assert "fast: integer = 10 (minimum 2, maximum 200, x-step 1)  fast SMA length, in candles" in result.stdout
    assert f"    trades              {direct.metrics['trades']}\n" in result.stdout
    assert f"    total_return_pct    {direct.metrics['total_return_pct']:.4f}\n" in result.stdout


def test_syntax_error_exits_1(check):
    result = check(BROKEN_DIR / "syntax_error.py")
    assert result.exit_code == 1
    assert "FAIL syntax_error.py does not load: " in result.stdout and "SyntaxError" in result.stdout


@pytest.mark.parametrize(("name", "message"), [
    ("import_error.py", "No module named 'tradefleet_no_such_module'"),
    ("no_signals.py", "implements neither signals() nor on_candle()"),
    ("bad_default.py", "default 500 is invalid"),
])
def test_load_errors_exit_1(check, name, message):
    result = check(BROKEN_DIR / name)
    assert result.exit_code == 1
    assert f"FAIL {name} does not load: " in result.stdout and message in result.stdout


def test_a_file_without_strategies_exits_1(check, tmp_path):
    path = tmp_path / "helpers.py"
    path.write_text("X = 1\n")
    result = check(path)
    assert result.exit_code == 1 and "defines no Strategy subclass" in result.stdout


def test_a_cheating_strategy_is_flagged_with_its_mismatches(check, tmp_path):
    path = tmp_path / "peek_next.py"
    path.write_text(CHEAT)

    result = check(path)

    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "peek_next (PeekNext, timeframe 1h)" in out
    assert "window: integer = 3" in out
    assert "FAIL look-ahead: " in out and "sampled signals change when the future is cut off" in out
    mismatch_lines = [line for line in out.splitlines() if "with the full history" in line]
    assert mismatch_lines and all(line.strip().startswith("2024-") for line in mismatch_lines)
    assert "FAIL peek_next.py: 1 of 1 strategies failed" in out


def test_a_strategy_that_raises_fails_its_backtest(check, tmp_path):
    # Outside its folder under another name: the check needs neither.
    path = tmp_path / "elsewhere.py"
    shutil.copy(BROKEN_DIR / "raises_in_signals.py", path)

    result = check(path)

    assert result.exit_code == 1
    assert ("FAIL backtest with the default parameters: raises_in_signals.signals() raised RuntimeError: "
            "deliberate failure") in result.stdout


def test_a_file_holds_one_strategy_and_candles_can_be_chosen(check, tmp_path):
    two = tmp_path / "two.py"
    two.write_text(TWO_CLEAN)
    one = tmp_path / "always_in.py"
    one.write_text(TWO_CLEAN.split("class NeverTrades")[0])
    lines = gzip.decompress((DATA / "binance_spot_ETHUSDT_1h_2024-01_2024-09.csv.gz").read_bytes()).decode()
    candles = tmp_path / "eth.csv"
    candles.write_text("\n".join(lines.splitlines()[:201]) + "\n")  # header + 200 candles

    refused = check(two, "--candles", candles)
    result = check(one, "--candles", candles)

    assert refused.exit_code != 0
    assert "two.py defines 2 Strategy subclasses (AlwaysIn, NeverTrades); a file holds exactly one" in refused.stdout
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "always_in (AlwaysIn" in out
    assert out.count("backtest with the default parameters on eth.csv") == 1
    assert out.count("(200 candles)") == 1
    assert "parameters: none" in out
    assert "OK always_in.py: 1 strategy checked" in out


def test_usage_errors_exit_2(check, tmp_path):
    assert check(tmp_path / "missing.py").exit_code == 2
    path = tmp_path / "ok.py"
    shutil.copy(REPO_ROOT / "strategies" / "sma_cross.py", path)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open\n1,2\n")
    result = check(path, "--candles", bad)
    assert result.exit_code == 2 and "error:" in result.output
