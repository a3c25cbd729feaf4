"""``tradefleet backtest``: table and JSON output, parameters, look-ahead flag, errors as exit 2."""

from __future__ import annotations

import json
import shutil

import pytest
from support.reference import DATA
from typer.testing import CliRunner

from tradefleet.cli import app
from tradefleet.config import REPO_ROOT

CHEAT = '''
from tradefleet.strategy import Strategy


class PeekNext(Strategy):
    """Deliberately cheating: uses the next candle's close."""
    startup_candles = 1

    def signals(self, candles):
        nxt = candles["close"].shift(-1)
        return candles.assign(enter_long=(nxt > candles["close"]).fillna(False),
                              exit_long=(nxt < candles["close"]).fillna(False))
'''
H1 = str(DATA / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz")


@pytest.fixture
def cli(tmp_path, settings_env):
    folder = tmp_path / "strategies"
    folder.mkdir()
    for name in ("sma_cross.py", "rsi_reversion.py"):
        shutil.copy(REPO_ROOT / "strategies" / name, folder)
    (folder / "peek_next.py").write_text(CHEAT)
    settings_env(STRATEGIES_DIR=str(folder))
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, ["backtest", *args])

    return invoke


def test_table_output(cli):
    result = cli("sma_cross", "--candles", H1, "--param", "fast=10", "--param", "slow=30", "--timeframe", "1h",
                 "--start", "2024-02-01", "--end", "2024-03-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "sma_cross BTC/USDT 1h  2024-02-01T00:00:00Z to 2024-03-01T00:00:00Z" in out
    for key in ("total_return_pct", "sharpe", "sortino", "max_drawdown_pct", "profit_factor", "exposure_pct"):
        assert key in out
    assert "look-ahead check: passed" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("entry time"))
    first = lines[header + 1].split()
    assert first[0].startswith("2024-02") and first[0].endswith("Z") and first[-1] in ("exit_long", "open")
    assert len(first) == 8  # entry, exit, entry price, exit price, amount, pnl, pnl %, reason


def test_json_output(cli):
    result = cli("rsi_reversion", "--candles", H1, "--param", "period=10", "--param", "oversold=25.5", "--json",
                 "--stake", "5000", "--fee", "0.00075")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"metrics", "trades", "lookahead"} <= set(out)
    assert out["params"] == {"period": 10, "oversold": 25.5, "overbought": 70.0}
    assert out["stake"] == 5000.0 and out["fee"] == 0.00075 and out["lookahead"]["flagged"] is False
    trade = out["trades"][0]
    assert {"entry_time", "exit_time", "entry_price", "exit_price", "amount", "pnl"} <= set(trade)


def test_cheating_strategy_is_flagged_and_no_lookahead_skips_the_check(cli):
    result = cli("peek_next", "--candles", H1, "--end", "2024-02-01")
    assert result.exit_code == 0, result.output
    assert "LOOK-AHEAD" in result.stdout
    result = cli("peek_next", "--candles", H1, "--end", "2024-02-01", "--json", "--no-lookahead")
    assert json.loads(result.stdout)["lookahead"] is None


@pytest.mark.parametrize("args,message", [
    (["sma_cross", "--param", "fast=500"], "invalid parameter fast: must be between 2 and 200"),
    (["sma_cross", "--param", "fast=40"], "invalid parameter fast: must be below slow"),
    (["sma_cross", "--param", "speed=3"], "invalid parameter speed: unknown parameter"),
    (["sma_cross", "--param", "fast"], "expected name=value"),
    (["sma_cross", "--param", "fast=ten"], "invalid parameter fast: must be an integer"),
    (["nope"], "unknown strategy 'nope' (available: peek_next, rsi_reversion, sma_cross)"),
    (["sma_cross", "--start", "2030-01-01"], "start 2030-01-01T00:00:00Z is outside the data"),
    (["sma_cross", "--start", "2024-03-01", "--end", "2024-02-01"], "empty date range"),
    (["sma_cross", "--timeframe", "5m"], "timeframe 5m does not match"),
])
def test_errors_exit_2_with_one_line(cli, args, message):
    result = cli(*args[:1], "--candles", H1, *args[1:])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_bad_csv_exit_2(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,close,volume\n1,1,1,1,1\n")
    result = cli("sma_cross", "--candles", str(bad))
    assert result.exit_code == 2 and "missing column low" in result.stderr
    result = cli("sma_cross", "--candles", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2 and "no such file" in result.stderr
