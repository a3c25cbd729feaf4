"""Without a sandbox the platform says so, refuses uploaded code, and runs bundled files only if the
operator opted in."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tradefleet.market.candles import frame_from_ohlcv
from tradefleet.sandbox import SandboxUnavailable, load_strategy, sandbox_status
from tradefleet.sandbox.registry import StrategyRegistry


def _source() -> bytes:
    # A fresh file each time (its own content hash), so no proxy cached by an earlier test is reused.
    return f'''
from tradefleet.strategy import Strategy


class Plain{secrets.token_hex(4)}(Strategy):
    """Enters on every candle."""

    def signals(self, candles):
        return candles.assign(enter_long=True, exit_long=False)
'''.encode()


@pytest.fixture
def no_sandbox(settings_env):
    def switch(**extra):
        settings_env(STRATEGY_SANDBOX="off", **extra)
        return sandbox_status(refresh=True)

    yield switch
    settings_env(STRATEGY_SANDBOX="bwrap")
    sandbox_status(refresh=True)


def test_an_unavailable_sandbox_refuses_every_strategy_by_default(no_sandbox, tmp_path: Path, settings_env):
    status = no_sandbox()
    assert not status.available and status.mode == "unavailable"
    assert "STRATEGY_SANDBOX=off" in status.reason

    with pytest.raises(SandboxUnavailable, match="uploaded strategies cannot run"):
        load_strategy(_source(), label="upload.py", trusted=False)
    with pytest.raises(SandboxUnavailable, match="STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED"):
        load_strategy(_source(), label="bundled.py", trusted=True)

    (tmp_path / "plain.py").write_bytes(_source())
    registry = StrategyRegistry(tmp_path)
    registry.refresh()
    assert registry.all() == []
    [broken] = registry.broken()
    assert broken.path == "plain.py" and "strategy sandbox unavailable" in broken.error


def test_the_operator_may_run_bundled_files_unsandboxed_but_never_uploads(no_sandbox):
    status = no_sandbox(STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED="true")
    assert not status.available and status.mode == "unsandboxed"

    bundled = load_strategy(_source(), label="bundled.py", trusted=True)
    assert not bundled.sandboxed
    candles = frame_from_ohlcv([[60_000 * i, 1.0, 1.0, 1.0, 1.0, 1.0] for i in range(5)])
    frame = bundled(bundled.validate_params({})).signals(candles)
    assert frame["enter_long"].tolist() == [True] * 5  # still out of process, through the same runner
    with pytest.raises(SandboxUnavailable, match="uploaded strategies cannot run"):
        load_strategy(_source(), label="upload.py", trusted=False)


def test_health_and_the_admin_system_page_say_why(no_sandbox, client, admin_client):
    no_sandbox()

    health = client.get("/api/v1/health")
    system = admin_client.get("/api/v1/admin/system")

    assert health.status_code == 503
    assert health.json()["sandbox"] == {"ok": False, "available": False, "mode": "unavailable",
                                        "reason": "the sandbox is switched off (STRATEGY_SANDBOX=off)"}
    assert system.status_code == 200 and system.json()["sandbox"]["reason"] == health.json()["sandbox"]["reason"]
