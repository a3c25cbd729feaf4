"""The escape corpus: hostile strategies (``hostile/``, one attack each) run through the product's own
paths, with a well-behaved ``sma_cross`` run on the same market in the same batch.

For every file: a paper run of it is ticked by :func:`tradefleet.engine.evaluate.evaluate_market`
against the exchange simulator next to a good run, then it is backtested through
:func:`tradefleet.backtest.engine.run_backtest` on its proxy, then its runner is asked again. Import-time
attacks that break the file go through :func:`tradefleet.sandbox.load_strategy` and the registry. The
test asserts that the attempt got nothing (no canary secret in any log line, event, reason, error or
manifest; no connection accepted by the test's listener; no file written on the host; no process
started), that the hostile run is paused (or the backtest or load refused) with a readable reason,
that the good run ticked on the same candle with its runner untouched, and that this process (the
worker) goes on and a fresh runner for the hostile strategy answers the next call.

Secrets planted (``canaries`` fixture): ``JWT_SECRET_KEY`` and ``API_ENCRYPTION_KEYS`` of this process,
a file under the repository's ``var/``, a user row in the database file. Each hostile strategy is told
the exact host paths and ports to try through its parameters: the strongest form of each attack.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from tradefleet.backtest.csvdata import load_csv
from tradefleet.backtest.engine import run_backtest
from tradefleet.backtest.errors import BacktestError
from tradefleet.config import REPO_ROOT
from tradefleet.engine.evaluate import evaluate_market
from tradefleet.engine.schedule import plan
from tradefleet.models import Run, RunCreate, RunEvent, RunStatus, User
from tradefleet.sandbox import StrategyLoadError, load_strategy, runner_pool
from tradefleet.sandbox import runners as runners_module
from tradefleet.services import runs as run_service
from tradefleet.sandbox.registry import get_registry

from sandbox_helpers import HOSTILE, Canaries, Listener

pytestmark = pytest.mark.usefixtures("sandbox_available")

MINUTE = 60_000
T0 = 1704067200000
TIMEOUT_S = 1.0
CANDLES_CSV = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_1m_2024-01.csv.gz"

@dataclass
class Host:
    """What the test tells a hostile strategy to aim at: exact host paths, ports and pids."""

    tmp: Path
    database_file: Path
    var_file: Path
    listener_port: int
    good_runner_file: Path
    marker: Path = field(init=False)
    host_tmp_marker: Path = field(init=False)
    repo_marker: Path = field(init=False)

    def __post_init__(self) -> None:
        tag = secrets.token_hex(6)
        self.marker = Path("/tmp") / f"tradefleet-escape-marker-{tag}"
        self.host_tmp_marker = Path("/tmp") / f"tradefleet-escape-{tag}" / "written.txt"
        self.repo_marker = REPO_ROOT / f"escape-{tag}" / "written.txt"

    def written(self) -> list[Path]:
        """Host paths a hostile strategy was told to create that exist now (must be none)."""
        return [p for p in (self.marker, self.host_tmp_marker, self.repo_marker, self.host_tmp_marker.parent,
                            self.repo_marker.parent) if p.exists()]


@dataclass
class Case:
    """One hostile file and what the platform must answer.

    ``outcome``: ``paused`` (the run is paused, the backtest refused, both with ``reason``), ``running``
    (the strategy only logs: the run goes on; its lines match ``logs``) or ``load_error`` (the file never
    yields a strategy; the load error matches ``reason``). ``check(host, text)`` asserts the attack's own
    evidence on everything the platform showed."""

    file: str
    reason: str
    outcome: str = "paused"
    params: Callable[[Host], dict[str, Any]] = lambda host: {}
    backtest: str | None = None
    logs: str | None = None
    check: Callable[[Host, str], None] | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def _no_marker(host: Host, text: str) -> None:
    assert not host.marker.exists(), "a process started by the strategy wrote its marker on the host"


def _nothing_written(host: Host, text: str) -> None:
    assert f"{host.repo_marker}: refused OSError" in text, text
    assert f"{host.host_tmp_marker}: refused OSError" in text, text  # the sandbox's root is read-only
    assert host.written() == []


def _clean_environment(host: Host, text: str) -> None:
    seen = re.search(r"environ=(\{.*?\})", text)
    assert seen, text
    keys = set(re.findall(r"'([A-Z_]+)':", seen.group(1)))
    assert keys == {"HOME", "TMPDIR", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "PWD"}


def _no_connection(host: Host, text: str) -> None:
    pass  # the listener's count is asserted for every case


def _every_read_refused(host: Host, text: str) -> None:
    attempts = re.findall(r"(?:read|list) [^:;]+: (\w+)", text)
    assert attempts and set(attempts) == {"refused"}, text


def _proc_sees_only_the_sandbox(host: Host, text: str) -> None:
    assert "pids=['1', '2']" in text, text
    assert f"/proc/{os.getpid()}/environ: refused" in text and f"/proc/{os.getpid()}/cmdline: refused" in text


def _other_files_refused(host: Host, text: str) -> None:
    assert "own folder ['read_other_strategy.py']" in text
    assert "sma_cross" not in text.replace("sma_cross.py: refused", "").replace(
        f"{host.good_runner_file}: refused", "")
    assert text.count(": refused FileNotFoundError") >= 2, text


def _signals_refused(host: Host, text: str) -> None:
    assert f"host pid {os.getpid()}: refused ProcessLookupError" in text, text
    assert os.getpid() > 0  # this process received nothing and is here to check


def _ctypes_refused(host: Host, text: str) -> None:
    for call in ("socket", "ptrace pid 1", "ptrace parent"):
        assert re.search(rf"{call} -> -1 errno Operation not permitted", text), text
    assert re.search(r"system -> (-1|32512)", text), text  # no shell could be started (127 << 8)


def _tmpfs_refused(host: Host, text: str) -> None:
    site = re.escape(str(Path(os.__file__).resolve().parent / "site-packages"))
    for folder in ("/", "/dev/shm", "/dev", "/sandbox", site):
        assert re.search(rf"(^|; |: ){folder}: refused Read-only file system", text, re.M), (folder, text)
    assert "/tmp: refused" in text and "/tmp: GOT" not in text, text
    assert "/scratch: refused No space left on device" in text, text  # the capped scratch space fills up


TIMED_OUT = r"took longer than 1 s; its runner was stopped"

CASES = [
    Case("read_environ.py", r"raised RuntimeError: environ=", check=_clean_environment),
    Case("read_vault_key.py", r"raised RuntimeError: read .*dev-api-encryption.key: refused",
         params=lambda h: {"targets": "\n".join([str(REPO_ROOT / "var" / "dev-api-encryption.key"), str(h.var_file),
                                                 str(REPO_ROOT / "var"), str(REPO_ROOT / "backend")])},
         check=_every_read_refused),
    Case("read_database.py", r"raised RuntimeError: read .*\.db: refused FileNotFoundError",
         params=lambda h: {"targets": "\n".join([str(h.database_file), "/var/lib/postgresql"])},
         check=_every_read_refused),
    Case("connect_postgres.py", r"raised PermissionError: \[Errno 1\] Operation not permitted"),
    Case("connect_redis.py", r"raised PermissionError: \[Errno 1\] Operation not permitted"),
    Case("tcp_listener.py", r"raised PermissionError: \[Errno 1\] Operation not permitted",
         params=lambda h: {"port": h.listener_port}, check=_no_connection),
    Case("resolve_host.py", r"localhost: refused gaierror; example.com: refused gaierror"),
    Case("import_platform.py", r"tradefleet.config: refused ModuleNotFoundError: No module named 'tradefleet.config'"
                               r"; tradefleet.security.vault: refused ModuleNotFoundError"),
    Case("import_platform_from_repo.py", r"raised ModuleNotFoundError: No module named 'tradefleet.config'",
         params=lambda h: {"backend": str(REPO_ROOT / "backend")}),
    Case("import_fails.py", r"ModuleNotFoundError: No module named 'tradefleet.security'", outcome="load_error"),
    Case("subprocess_run.py", r"raised PermissionError: \[Errno 1\] Operation not permitted",
         params=lambda h: {"marker": str(h.marker)}, check=_no_marker),
    Case("os_system.py", r"raised RuntimeError: os.system returned (-1|32512)",
         params=lambda h: {"marker": str(h.marker)}, check=_no_marker),
    Case("posix_spawn.py", r"raised PermissionError: \[Errno 1\] Operation not permitted",
         params=lambda h: {"marker": str(h.marker)}, check=_no_marker),
    Case("fork_bomb.py", r"raised PermissionError: \[Errno 1\] Operation not permitted"),
    Case("thread_bomb.py", r"raised RuntimeError: can't start new thread"),
    Case("allocate_10gb.py", r"raised MemoryError"),
    Case("busy_loop.py", r"took longer than 1 s; its runner was stopped", backtest=TIMED_OUT),
    Case("catch_timeout.py", r"took longer than 1 s; its runner was stopped", backtest=TIMED_OUT),
    Case("signal_handlers.py", r"took longer than 1 s; its runner was stopped", backtest=TIMED_OUT),
    Case("write_outside.py", r"written.txt: refused OSError; .*written.txt: refused OSError",
         params=lambda h: {"targets": "\n".join([str(h.repo_marker), str(h.host_tmp_marker)])},
         check=_nothing_written),
    Case("read_proc_environ.py", r"raised RuntimeError: pids=\['1', '2'\]",
         params=lambda h: {"host_pid": os.getpid()}, check=_proc_sees_only_the_sandbox),
    Case("read_other_strategy.py", r"raised RuntimeError: own folder \['read_other_strategy.py'\]",
         params=lambda h: {"targets": "\n".join([str(REPO_ROOT / "strategies" / "sma_cross.py"),
                                                 str(h.good_runner_file)])},
         check=_other_files_refused),
    Case("ctypes_libc.py", r"socket -> -1 errno Operation not permitted", check=_ctypes_refused),
    Case("int80_socket.py", r"the strategy's runner failed: it exited with status 159 .*|"
                            r"the strategy's runner failed: it (exited with status 159|was killed by SIGSYS)"),
    Case("signal_processes.py", r"pid 1: (sent|refused \w+); parent: (sent|refused \w+); every process: refused",
         params=lambda h: {"host_pid": os.getpid()}, check=_signals_refused),
    Case("huge_frame.py", r"runner failed: it sent an invalid reply \(arrays exceed the cap of \d+ bytes\)"),
    Case("garbage_fds.py", r"runner failed: it sent an invalid reply \(header of \d+ bytes exceeds the cap"),
    Case("huge_dataframe.py", r"returned 20000000 rows for \d+ candles"),
    Case("nan_signals.py", r"gave NaN in enter_long", backtest=r"NaN"),
    Case("wrong_shape.py", r"returned \d+ rows for \d+ candles"),
    Case("log_secret.py", "", outcome="running", logs=r"secret environ: \{'HOME': '/scratch'"),
    Case("tmpfs_fill.py", r"/: refused Read-only file system; /dev/shm: refused Read-only file system",
         check=_tmpfs_refused),
    Case("sysv_shm.py", r"shared memory refused: Operation not permitted"),
    Case("memfd_fill.py", r"raised PermissionError: \[Errno 1\] Operation not permitted"),
    Case("nested_json_frame.py", r"the strategy runner did not start: it sent an invalid reply "
                                 r"\(header is nested too deeply\)", outcome="load_error"),
    Case("import_busy_loop.py", r"import_busy_loop.py: the strategy runner did not start: it did not say ready "
                                r"within 3 s", outcome="load_error", settings={"STRATEGY_RUNNER_START_TIMEOUT_S": 3}),
    Case("forged_manifest.py", r"forged_manifest.py: manifest position_size must be a number in \[1e-12, 1\]",
         outcome="load_error"),
    Case("forged_orders.py", r"on_candle\(\) raised ValueError: buy of 1e\+15 exceeds the cash"),
]


def test_the_corpus_is_complete():
    """Every hostile file has its case, and the corpus holds at least the attacks the platform promises."""
    assert sorted(p.name for p in HOSTILE.glob("*.py")) == sorted(c.file for c in CASES)
    assert len(CASES) >= 20


_candles = None


def backtest_candles():
    global _candles
    if _candles is None:
        _candles = load_csv(CANDLES_CSV).iloc[:240]
    return _candles


def runner_processes(digest: str, *, settle_s: float = 2.0) -> list[int]:
    """Host pids of processes started for runners of this strategy version (a runner is three: its
    bwrap, the sandbox's init and the runner, each with the version's module name on its command line).
    A runner just killed takes a moment to go (its sandbox dies with its bwrap): waits up to
    ``settle_s`` for the count to reach three or fewer."""
    needle = f"tradefleet_strategy_{digest[:16]}".encode()
    deadline = time.monotonic() + settle_s
    while True:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if needle in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    continue
        if len(pids) <= 3 or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


_password_hash: str | None = None


def trader(session: Session, email: str) -> User:
    """A trader row (one argon2 hash per test session: hashing takes about a second per user)."""
    global _password_hash
    if _password_hash is None:
        from tradefleet.security.passwords import hash_password

        _password_hash = hash_password(secrets.token_urlsafe(16))
    user = User(email=email, hashed_password=_password_hash)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def restarted(proxy, params: dict[str, Any]) -> None:
    """Ask the strategy's runner something harmless: a runner that was stopped is started again and
    answers (the attack is in ``signals()``, not in ``startup_candles``)."""
    runner = runner_pool().runners[proxy.content_hash]
    was_alive, starts = runner.alive, runner.started
    reply, _ = proxy.call({"op": "startup", "params": params})
    assert reply == {"ok": True, "startup": 0}
    assert runner.alive and runner.started == starts + (0 if was_alive else 1)


def new_run(session: Session, user, strategy: str, params: dict[str, Any]) -> Run:
    run = run_service.create_run(session=session, owner=user, run_in=RunCreate(
        strategy=strategy, params=params, exchange="binance", symbol="BTC/USDT", timeframe="1m",
        mode="paper", stake=10_000.0))
    return run_service.start_run(session=session, owner=user, run_id=run.id)


def tick(sim, now_ms: int) -> list:
    sim.clock.set(now_ms)
    return [evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit) for d in plan()]


def reload(session: Session, run: Run) -> Run:
    session.expire_all()
    return session.get(Run, run.id)


def events_text(session: Session, run: Run) -> tuple[list[RunEvent], str]:
    events = session.exec(select(RunEvent).where(RunEvent.run_id == run.id).order_by(RunEvent.id)).all()
    return events, "\n".join(f"{e.kind} {e.level} {e.message} {json.dumps(e.data)}" for e in events)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("case", CASES, ids=[c.file.removesuffix(".py") for c in CASES])
def test_hostile_strategy_gets_nothing(case: Case, session, market_catalog, settings_env,
                                       canaries: Canaries, listener: Listener, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "sma_cross.py", folder)
    shutil.copy(HOSTILE / case.file, folder)
    settings_env(STRATEGIES_DIR=str(folder), STRATEGY_TIMEOUT_S=TIMEOUT_S, **case.settings)
    registry = get_registry()
    good_proxy = registry.get("sma_cross")
    good_runner = runner_pool().runners[good_proxy.content_hash]
    host = Host(tmp=tmp_path, database_file=Path(make_url(str(session.get_bind().url)).database),
                var_file=canaries.var_file, listener_port=listener.port,
                good_runner_file=runners_module.strategy_file(good_proxy.content_hash, good_proxy.source))
    alice = trader(session, f"{canaries.values['database row']}@example.com")
    bob = trader(session, f"bob-{secrets.token_hex(4)}@example.com")
    shown: list[str] = []  # everything the platform showed of the hostile strategy
    entry = next(e for e in registry.entries() if e.filename == case.file)
    source = (HOSTILE / case.file).read_bytes()

    if case.outcome == "load_error":
        assert entry.strategy is None and entry.error and re.search(case.reason, entry.error), entry.error
        with pytest.raises(StrategyLoadError) as refused:  # the upload path: never trusted
            load_strategy(source, label=case.file, trusted=False)
        assert re.search(case.reason, refused.value.message), refused.value.message
        assert [b.path for b in registry.broken()] == [case.file]
        shown += [entry.error, refused.value.message]
        gone = runner_processes(runners_module.content_hash(source), settle_s=0)
        deadline = time.monotonic() + 2
        while gone and time.monotonic() < deadline:  # a runner just killed takes a moment to go
            time.sleep(0.05)
            gone = runner_processes(runners_module.content_hash(source), settle_s=0)
        assert gone == []  # nothing left running
        good = new_run(session, alice, "sma_cross", {"fast": 5, "slow": 20})
        tick(market_catalog, T0 + 40 * MINUTE + 1)
        assert reload(session, good).last_candle_ms == T0 + 39 * MINUTE
    else:
        hostile = entry.strategy
        assert hostile is not None, entry.error
        shown.append(json.dumps(hostile.manifest.to_json()))
        params = case.params(host)
        good = new_run(session, alice, "sma_cross", {"fast": 5, "slow": 20})
        bad = new_run(session, bob, hostile.name, params)
        good_pid = good_runner.proc.pid

        # One market tick: both runs in one batch of one evaluate_market call.
        reports = tick(market_catalog, T0 + 40 * MINUTE + 1)
        assert len(reports) == 1 and reports[0].runs == 2
        candle = T0 + 39 * MINUTE
        good, bad = reload(session, good), reload(session, bad)
        assert good.status == RunStatus.running and good.last_candle_ms == candle  # the same candle
        events, text = events_text(session, bad)
        shown += [text, bad.status_reason or ""]
        if case.outcome == "paused":
            assert bad.status == RunStatus.paused, (bad.status, text)
            assert re.search(case.reason, bad.status_reason), bad.status_reason
            paused = [e for e in events if e.kind == "paused"]
            assert len(paused) == 1 and paused[0].message == bad.status_reason
            assert reports[0].paused == 1
        else:
            assert bad.status == RunStatus.running and bad.last_candle_ms == candle
            assert re.search(case.logs, text), text
        # The good run's runner was not disturbed, and at most one runner's processes exist per version.
        assert good_runner.alive and good_runner.proc.pid == good_pid
        assert len(runner_processes(hostile.content_hash)) <= 3

        # The next candle: the good run ticks again; a paused run is left alone.
        tick(market_catalog, T0 + 41 * MINUTE + 1)
        assert reload(session, good).last_candle_ms == candle + MINUTE
        if case.outcome == "paused":
            assert reload(session, bad).status == RunStatus.paused

        # The platform goes on: a runner for the hostile version starts again (if it was stopped) and answers.
        validated = hostile.validate_params(params)
        restarted(hostile, validated)
        assert good_runner.alive and good_runner.proc.pid == good_pid

        # A backtest of the same strategy is refused with the same reason (or, for the logging one, runs).
        try:
            result = run_backtest(hostile, backtest_candles(), params=params, timeout_s=TIMEOUT_S)
        except BacktestError as exc:
            assert case.outcome == "paused", str(exc)
            assert re.search(case.backtest or case.reason, str(exc)), str(exc)
            shown.append(str(exc))
        else:
            assert case.outcome == "running"
            shown.append(json.dumps(result.trades) + json.dumps(result.metrics, default=str))

        restarted(hostile, validated)
        assert len(runner_processes(hostile.content_hash)) <= 3

    text = "\n".join(shown)
    assert "GOT" not in text, text
    if case.check is not None:
        case.check(host, text)
    assert listener.accepted == 0
    assert host.written() == []
    out, err = capfd.readouterr()
    leaked = canaries.found_in(text, caplog.text, out, err)
    assert leaked == [], f"canaries {leaked} came back from the sandbox"
