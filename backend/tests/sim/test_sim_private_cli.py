"""``tradefleet exchange-sim --accounts ... --state-file ...`` as a real process: the accounts of the
file trade through ccxt, and a restarted simulator still has their balances and orders."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support.common import free_port

from tradefleet.market.exchange import make_exchange

BIN = Path(sys.executable).parent


def start(port: int, accounts: Path, state: Path) -> subprocess.Popen:
    proc = subprocess.Popen([str(BIN / "tradefleet"), "exchange-sim", "--port", str(port), "--speed", "0",
                             "--start", "2024-01-03T00:00:00Z", "--accounts", str(accounts),
                             "--state-file", str(state)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the simulator did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def test_accounts_file_and_state_file_through_the_cli(tmp_path: Path) -> None:
    accounts, state = tmp_path / "accounts.json", tmp_path / "state.json"
    accounts.write_text(json.dumps([{"api_key": "cli-key", "secret": "cli-secret", "balances": {"USDT": "2000"}}]))
    port = free_port()
    creds = {"apiKey": "cli-key", "secret": "cli-secret"}
    proc = start(port, accounts, state)
    try:
        ex = make_exchange("binance", api_base_url=f"http://127.0.0.1:{port}", credentials=creds)
        ex.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, {"clientOrderId": "cli-1"})
        assert ex.fetch_balance()["USDT"] == {"free": 1600.0, "used": 400.0, "total": 2000.0}
    finally:
        stop(proc)
    # restarted without --accounts' reset: the state file wins for keys the file does not list
    accounts.write_text("[]")
    proc = start(port, accounts, state)
    try:
        ex = make_exchange("binance", api_base_url=f"http://127.0.0.1:{port}", credentials=creds)
        assert ex.fetch_balance()["USDT"] == {"free": 1600.0, "used": 400.0, "total": 2000.0}
        assert ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "cli-1"})["status"] == "open"
    finally:
        stop(proc)


def test_a_bad_accounts_file_is_a_one_line_error(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"api_key": "k", "secret": "s", "permissions": {"withdraw": "yes"}}]))
    done = subprocess.run([str(BIN / "tradefleet"), "exchange-sim", "--port", str(free_port()),
                           "--accounts", str(accounts)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "permissions.withdraw" in done.stderr and "Traceback" not in done.stderr
