"""``GET /api/v1/admin/strategies``: the strategy catalog with broken files, for admins only."""

from __future__ import annotations

import shutil
from pathlib import Path

from tradefleet.config import REPO_ROOT

ADMIN_STRATEGIES = "/api/v1/admin/strategies"
BROKEN_DIR = Path(__file__).parents[1] / "strategies_broken"


def test_traders_get_403_and_anonymous_callers_401(user_client, client):
    response = user_client.get(ADMIN_STRATEGIES)
    assert response.status_code == 403 and response.json() == {"detail": "admin only"}
    anonymous = client.get(ADMIN_STRATEGIES)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"


def test_admin_sees_every_strategy_and_every_broken_file(admin_client, settings_env, tmp_path):
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "sma_cross.py", folder)
    shutil.copy(REPO_ROOT / "strategies" / "dca_dip.py", folder)
    for name in ("syntax_error.py", "bad_default.py", "import_error.py", "no_signals.py"):
        shutil.copy(BROKEN_DIR / name, folder)
    settings_env(STRATEGIES_DIR=str(folder))

    response = admin_client.get(ADMIN_STRATEGIES)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["strategies"] == [
        {"name": "dca_dip", "description": body["strategies"][0]["description"], "file": "dca_dip.py",
         "timeframe": "1h", "enabled": True, "version": 1, "origin": "bundled", "author": "Tradefleet"},
        {"name": "sma_cross", "description": "Long when the fast SMA of the close crosses above the slow SMA; "
                                             "flat when it crosses back below.", "file": "sma_cross.py",
         "timeframe": "1h", "enabled": True, "version": 1, "origin": "bundled", "author": "Tradefleet"},
    ]
    assert body["strategies"][0]["description"].startswith("Buy a fixed slice of the stake")
    broken = {b["file"]: b["error"] for b in body["broken"]}
    assert set(broken) == {"syntax_error.py", "bad_default.py", "import_error.py", "no_signals.py"}
    assert broken["syntax_error.py"].startswith("File \"syntax_error.py\"") and "SyntaxError" in broken["syntax_error.py"]
    assert "default 500 is invalid" in broken["bad_default.py"]
    assert "No module named 'tradefleet_no_such_module'" in broken["import_error.py"]
    assert "implements neither signals() nor on_candle()" in broken["no_signals.py"]
    assert str(tmp_path) not in response.text  # file names only, never the server's paths
