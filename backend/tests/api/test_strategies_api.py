"""``GET /api/v1/strategies`` and how runs follow changes in ``STRATEGIES_DIR``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tradefleet.config import REPO_ROOT

STRATEGIES = "/api/v1/strategies"
RUNS = "/api/v1/runs"
BROKEN_DIR = Path(__file__).parents[1] / "strategies_broken"
GOOD_DIR = REPO_ROOT / "strategies"


def by_name(response) -> dict[str, dict]:
    assert response.status_code == 200, response.text
    return {s["name"]: s for s in response.json()}


def touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_lists_the_platform_strategies_with_their_schema(user_client):
    strategies = by_name(user_client.get(STRATEGIES))

    assert {"sma_cross", "rsi_reversion"} <= set(strategies)
    sma = strategies["sma_cross"]
    assert sma["description"].startswith("Long when the fast SMA of the close crosses above the slow SMA")
    assert "\n" not in sma["description"] and "backtesting.py" not in sma["description"]  # first paragraph
    assert sma["timeframe"] == "1h"
    assert sma["startup_candles"] == 30  # max(fast, slow) for the defaults
    assert sma["stoploss"] is None
    schema = sma["params_schema"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["properties"]["fast"] == {"type": "integer", "default": 10, "minimum": 2, "maximum": 200,
                                            "x-step": 1, "description": "fast SMA length, in candles"}
    assert schema["properties"]["slow"]["default"] == 30
    assert (schema["properties"]["slow"]["minimum"], schema["properties"]["slow"]["maximum"]) == (5, 400)

    rsi = strategies["rsi_reversion"]
    assert rsi["description"].startswith("Buy when the RSI falls below an oversold threshold")
    assert rsi["timeframe"] == "1h" and rsi["startup_candles"] == 15
    props = rsi["params_schema"]["properties"]
    assert list(props) == ["period", "oversold", "overbought"]
    assert props["period"]["type"] == "integer" and props["period"]["default"] == 14
    assert props["oversold"] == {"type": "number", "default": 30.0, "minimum": 1.0, "maximum": 50.0,
                                 "x-step": 0.5, "description": "enter below this RSI"}
    assert (props["overbought"]["minimum"], props["overbought"]["maximum"]) == (50.0, 99.0)


def test_requires_authentication(client):
    response = client.get(STRATEGIES)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"


def test_broken_files_are_left_out_and_never_a_500(user_client, settings_env, tmp_path):
    for name in ["sma_cross.py"]:
        shutil.copy(GOOD_DIR / name, tmp_path / name)
    for src in BROKEN_DIR.glob("*.py"):
        shutil.copy(src, tmp_path / src.name)
    (tmp_path / "startup_fails.py").write_text(
        "from tradefleet.strategy import Strategy\n\n\n"
        "class StartupFails(Strategy):\n"
        '    """Its startup_candles property raises."""\n\n'
        "    @property\n"
        "    def startup_candles(self):\n"
        "        raise ValueError('no idea')\n\n"
        "    def signals(self, candles):\n"
        "        return candles.assign(enter_long=False, exit_long=False)\n"
    )
    settings_env(STRATEGIES_DIR=str(tmp_path))

    strategies = by_name(user_client.get(STRATEGIES))

    assert set(strategies) == {"sma_cross", "duplicate_name", "raises_in_signals", "startup_fails"}
    assert strategies["raises_in_signals"]["startup_candles"] == 2
    assert strategies["raises_in_signals"]["timeframe"] == "1m"
    assert strategies["raises_in_signals"]["params_schema"] == {
        "type": "object", "properties": {}, "additionalProperties": False}
    assert strategies["startup_fails"]["startup_candles"] is None
    assert strategies["duplicate_name"]["description"] == "The first definition of duplicate_name."


def test_a_new_strategy_file_is_listed_without_restart(user_client, settings_env, tmp_path):
    shutil.copy(GOOD_DIR / "sma_cross.py", tmp_path / "sma_cross.py")
    settings_env(STRATEGIES_DIR=str(tmp_path))
    assert set(by_name(user_client.get(STRATEGIES))) == {"sma_cross"}

    shutil.copy(BROKEN_DIR / "raises_in_signals.py", tmp_path / "raises_in_signals.py")
    assert set(by_name(user_client.get(STRATEGIES))) == {"sma_cross", "raises_in_signals"}

    (tmp_path / "sma_cross.py").unlink()
    assert set(by_name(user_client.get(STRATEGIES))) == {"raises_in_signals"}


# --- runs follow the strategy files ---------------------------------------------------------------


def test_start_refuses_a_run_whose_strategy_was_deleted(user_client, catalog, settings_env, tmp_path):
    shutil.copy(GOOD_DIR / "sma_cross.py", tmp_path / "sma_cross.py")
    settings_env(STRATEGIES_DIR=str(tmp_path))
    created = user_client.post(RUNS, json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                                           "stake": 100})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]

    (tmp_path / "sma_cross.py").unlink()
    response = user_client.post(f"{RUNS}/{run_id}/start")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "strategy"
    assert "no longer available" in response.json()["errors"][0]["message"]
    assert user_client.get(f"{RUNS}/{run_id}").json()["status"] == "created"
    assert [e["kind"] for e in user_client.get(f"{RUNS}/{run_id}/events").json()] == ["created"]


def test_an_edited_strategy_file_is_a_new_version_and_runs_keep_theirs(user_client, catalog, settings_env,
                                                                        tmp_path):
    path = tmp_path / "sma_cross.py"
    shutil.copy(GOOD_DIR / "sma_cross.py", path)
    settings_env(STRATEGIES_DIR=str(tmp_path))
    created = user_client.post(RUNS, json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                                           "stake": 100, "params": {"fast": 3}})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    assert created.json()["strategy_version"] == 1

    path.write_text(path.read_text().replace("IntParam(10, low=2,", "IntParam(10, low=5,"))
    touch_later(path)
    listed = by_name(user_client.get(STRATEGIES))
    assert listed["sma_cross"]["params_schema"]["properties"]["fast"]["minimum"] == 5
    assert listed["sma_cross"]["version"] == 2

    # The run is pinned to version 1, which accepts fast=3: it starts, on its own version.
    started = user_client.post(f"{RUNS}/{run_id}/start")
    assert started.status_code == 200, started.text
    assert started.json()["strategy_version"] == 1
    user_client.post(f"{RUNS}/{run_id}/stop")
    # Moving it to version 2 checks its parameters against that version.
    moved = user_client.post(f"{RUNS}/{run_id}/strategy-version", json={"version_id": listed["sma_cross"]["version_id"]})
    assert moved.status_code == 422
    assert moved.json()["errors"][0]["field"] == "params.fast"
    assert user_client.get(f"{RUNS}/{run_id}").json()["strategy_version"] == 1
    fresh = user_client.post(RUNS, json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                                         "stake": 100, "params": {"fast": 3}})
    assert fresh.status_code == 422 and fresh.json()["errors"][0]["field"] == "params.fast"
