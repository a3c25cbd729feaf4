"""Strategy files are never imported by the platform's own processes: only sandboxed runners execute them."""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

import pytest

from tradefleet.config import REPO_ROOT
from tradefleet.sandbox import StrategyProxy, sandbox_status
from tradefleet.strategy.params import ParamError
from tradefleet.sandbox.registry import StrategyRegistry

PACKAGE = REPO_ROOT / "backend" / "tradefleet"

MARKER = '''
import os

os.environ["TRADEFLEET_STRATEGY_IMPORTED_BY"] = str(os.getpid())

from tradefleet.strategy import IntParam, ParamError, Strategy


class ImportMarker(Strategy):
    """Marks the environment of the process that imports it."""

    fast = IntParam(3, low=1, high=10)
    slow = IntParam(5, low=2, high=20)

    @classmethod
    def check_params(cls, params):
        if params["fast"] >= params["slow"]:
            raise ParamError("fast", "must be below slow")

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
'''


def _imported_from(folder: Path) -> list[str]:
    return [name for name, module in list(sys.modules.items())
            if str(folder) in str(getattr(module, "__file__", "") or "")]


def test_the_sandbox_is_available_on_this_machine():
    # make test installs bubblewrap and python3-seccomp; CI must exercise the real sandbox.
    status = sandbox_status()
    assert status.available, status.reason
    assert status.mode == "bwrap"


def test_the_api_lists_a_strategy_without_importing_it(tmp_path: Path, settings_env, user_client):
    (tmp_path / "marker.py").write_text(MARKER)
    settings_env(STRATEGIES_DIR=str(tmp_path))

    reply = user_client.get("/api/v1/strategies")

    assert reply.status_code == 200, reply.text
    [entry] = [s for s in reply.json() if s["name"] == "import_marker"]
    assert set(entry["params_schema"]["properties"]) == {"fast", "slow"}
    assert "TRADEFLEET_STRATEGY_IMPORTED_BY" not in os.environ
    assert _imported_from(tmp_path) == []


def test_parameters_are_checked_by_the_strategys_own_rules_in_its_runner(tmp_path: Path, settings_env):
    (tmp_path / "marker.py").write_text(MARKER)
    settings_env(STRATEGIES_DIR=str(tmp_path))
    registry = StrategyRegistry(tmp_path)
    registry.refresh()
    proxy = registry.get("import_marker")

    assert isinstance(proxy, StrategyProxy) and proxy.sandboxed
    assert proxy.validate_params({"fast": 2}) == {"fast": 2, "slow": 5}
    with pytest.raises(ParamError) as range_error:
        proxy.validate_params({"fast": 11})
    assert range_error.value.field == "fast"
    with pytest.raises(ParamError, match="must be below slow") as rule_error:  # check_params ran in the runner
        proxy.validate_params({"fast": 9, "slow": 6})
    assert rule_error.value.field == "fast"
    assert "TRADEFLEET_STRATEGY_IMPORTED_BY" not in os.environ
    assert _imported_from(tmp_path) == []


def test_no_platform_module_imports_files_by_path():
    """Only the runner (inside the sandbox) may execute a file by path; any other importlib/runpy/exec use
    in the package would be a way around the sandbox."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ("sandbox/runner.py", "migrations/env.py") or rel.startswith("migrations/versions/"):
            continue
        tree = ast.parse(path.read_text(), filename=rel)
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and node.attr in ("spec_from_file_location", "exec_module",
                                                                 "run_path", "SourceFileLoader"):
                name = node.attr
            elif isinstance(node, ast.Name) and node.id in ("exec", "execfile"):
                name = node.id
            if name:
                offenders.append(f"{rel}:{node.lineno} {name}")
    assert offenders == []


def test_the_sandbox_binds_only_the_sdk_of_the_platform():
    from tradefleet.sandbox.launch import SDK_FILES, bwrap_command

    argv = bwrap_command(Path("/dev/null"), "x.py", "m")
    bound = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--ro-bind"]
    platform = sorted(Path(src).relative_to(PACKAGE).as_posix() for src in bound if src.startswith(str(PACKAGE)))
    assert platform == sorted(SDK_FILES)
    assert not any(part in src for src in bound for part in ("/var", "config.py", "security", ".env", "/etc"))
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv


SPINNER = '''
import time

from tradefleet.sandbox import protocol
from tradefleet.strategy import Strategy


class Spinner(Strategy):
    """Replaces the runner's read of the next request with one that first burns CPU."""

    def signals(self, candles):
        original = protocol.read_frame

        def spin_then_read(*args, **kwargs):
            until = time.monotonic() + 2.0
            while time.monotonic() < until:
                pass
            return original(*args, **kwargs)

        protocol.read_frame = spin_then_read
        return candles.assign(enter_long=False, exit_long=False)
'''


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_runner_gets_no_cpu_between_requests():
    from tradefleet.market.candles import frame_from_ohlcv
    from tradefleet.sandbox import load_strategy
    from tradefleet.sandbox.runners import runner_pool

    proxy = load_strategy(SPINNER.encode(), label="spinner.py", trusted=False)
    candles = frame_from_ohlcv([[60_000 * i, 1.0, 1.0, 1.0, 1.0, 1.0] for i in range(5)])
    proxy(proxy.validate_params({})).signals(candles)
    runner = runner_pool().runners[proxy.content_hash]
    before = _cpu_s(runner.inner_pid)
    time.sleep(1.5)  # the runner's patched loop would spin all along

    assert _cpu_s(runner.inner_pid) - before < 0.2  # stopped (SIGSTOP) until the next request
    assert Path(f"/proc/{runner.inner_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    # The next request resumes it: the spin happens inside that request's budget, then it answers.
    frame = proxy(proxy.validate_params({})).signals(candles)
    assert frame["enter_long"].tolist() == [False] * 5
