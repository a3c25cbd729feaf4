#!/usr/bin/env python3
"""Fleet benchmark: N paper runs against the exchange simulator, with the platform's real processes.

    .venv/bin/python bench/fleet.py                     # 1,000 runs, default speed, 120 s measured
    .venv/bin/python bench/fleet.py --speed 60 --json   # one JSON object of the figures on stdout

What it does (DESIGN.md section 3): creates a fresh PostgreSQL database (dropped at the end unless
``--keep``) and migrates it, flushes a dedicated Redis database, starts the exchange simulator, loads
the market catalog, creates users and ``--runs`` paper runs of ``sma_cross`` and ``rsi_reversion``
(parameters drawn uniformly within their declared ranges, fixed ``--seed``) spread over the recorded
1m markets, through the services; starts them, then a Celery worker (prefork, concurrency 2) and
beat (``tradefleet.devstack.Stack``). After ``--warmup`` seconds it measures for ``--duration``
seconds, lets the last candles of the window drain, and prints:

- run-ticks per second (``equity_snapshot`` rows whose ``evaluated_at`` falls in the window) and the
  candles each run covered out of those that closed in the window;
- tick lag: ``evaluated_at`` minus the wall time at which the candle closed on the simulator's clock
  (sim time mapped to wall time from ``/sim/status``, see :class:`SimWallClock`); a tick that never
  happened counts as infinitely late;
- market-data requests per candle, counted at the simulator (``/sim/stats``) and cross-checked with
  the engine's Redis counter ``metrics:ohlcv_fetches:<market>``; ``/api/v3/time`` calls per second;
- worker memory (RSS of the worker's process tree, end and peak) and CPU use per process group;
- paused runs and runs behind the latest closed candle at the end of the window.

It prints PASS/FAIL against the targets: p99 tick lag under ``--target-p99`` seconds (5), exactly one
klines request per market per candle, no paused run, no missing tick, no run behind by more than the
target lag. Progress goes to stderr; the processes' logs to ``var/bench/fleet-<time>/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import secrets
import socket
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "backend"))

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

MINUTE_MS = 60_000
MARKETS = ("BTC/USDT", "ETH/USDT", "BNB/USDT")  # the recorded 1m markets (data/ohlcv, January 2024)
STRATEGIES = ("sma_cross", "rsi_reversion")
DEFAULT_SPEED = 20.0
SPEED_NOTE = (
    "a real exchange closes one 1m candle per minute (1x); at {speed:g}x one closes every {every:.1f} s of wall "
    "time, so {runs} runs need {need:.0f} run-ticks/s where production needs {prod:.1f}. Default {default:g}x: "
    "{default:g} times production's load, 40 candles per run in 120 s, and the strategies' own pandas code "
    "(1.3-2 ms a run-tick here, most of the engine's CPU) keeps about a third of this 2-core machine busy, "
    "so the lag measured is that of one candle's burst of work, as a trader at 1x would see it, not a queue "
    "that depends on what else the machine runs. 60x (one candle a second, about two thirds of both cores, "
    "no headroom for anyone else's load) is the stress test: --speed 60"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ascending values, nearest rank (``inf`` values allowed)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


# --------------------------------------------------------------------------------------------- clock


class SimWallClock:
    """Maps simulator time to this machine's wall clock.

    The simulator's clock is ``now_ms = anchor + (monotonic - anchor_t) * speed`` (``SimClock``), a
    straight line in wall time, so ``wall = wall_ref + (sim - sim_ref) / speed``. Each sample of
    ``/sim/status`` is bracketed by two wall readings; the sample with the shortest round trip fixes
    ``(wall_ref, sim_ref)`` (its uncertainty is half that round trip), and a second set of samples
    at the end checks that the line still holds (drift between monotonic and wall clocks, or a clock
    that was moved).
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(timeout=5)
        self.speed, self.wall_ref, self.sim_ref, self.uncertainty_s = self._fit()

    def _fit(self, samples: int = 25) -> tuple[float, float, float, float]:
        best: tuple[float, float, float, float] | None = None
        for _ in range(samples):
            before = time.time()
            status = self.client.get(f"{self.base_url}/sim/status").json()
            after = time.time()
            rtt = after - before
            if best is None or rtt < best[3]:
                # the sim clock was read somewhere in [before, after]; int() truncates < 1 sim ms
                best = (float(status["speed"]), (before + after) / 2, status["now_ms"] + 0.5, rtt)
            time.sleep(0.005)
        assert best is not None
        speed, wall, sim, rtt = best
        if speed <= 0:
            raise SystemExit("the simulator clock is frozen (speed 0): nothing to measure")
        return speed, wall, sim, rtt / 2

    def wall_of(self, sim_ms: float) -> float:
        """Wall time (epoch s) at which the simulator's clock shows ``sim_ms``."""
        return self.wall_ref + (sim_ms - self.sim_ref) / self.speed / 1000.0

    def sim_of(self, wall_s: float) -> float:
        return self.sim_ref + (wall_s - self.wall_ref) * self.speed * 1000.0

    def check(self) -> float:
        """Re-fit and return how far (wall seconds) the new fit's line is from this one, now."""
        speed, wall, sim, _ = self._fit()
        if speed != self.speed:
            raise RuntimeError(f"the simulator's speed changed during the benchmark ({self.speed} -> {speed})")
        return abs(self.wall_of(sim) - wall)


class CommitPoller:
    """When ``equity_snapshot`` rows become visible to readers (committed), per candle.

    ``evaluated_at`` is stamped while a batch is evaluated, before its transaction commits; a trader
    sees the tick at the commit. This thread polls, every ``interval_s``, the number of rows per
    ``candle_ms`` among rows with ``id > lo`` (a primary-key range scan: cheap), and adds the counts
    of rows at or below ``lo`` kept from before. ``lo`` advances to the largest id seen ``settle_s``
    ago, by when every transaction holding a smaller id has long committed (a batch inserts its
    snapshots milliseconds before it commits). The k-th row of a candle is visible at the first poll
    whose count reaches k: times are upper bounds, late by at most ``interval_s``.
    """

    def __init__(self, db_url: str, interval_s: float = 0.2, settle_s: float = 3.0) -> None:
        self.engine = create_engine(db_url, poolclass=NullPool)
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.lo = 0
        self.frozen: dict[int, int] = defaultdict(int)
        self.seen: list[tuple[float, int]] = []  # (poll time, largest id seen)
        self.samples: dict[int, list[tuple[float, int]]] = defaultdict(list)  # candle -> [(t, total)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def _poll(self, conn: Any) -> None:
        now = time.time()
        rows = conn.execute(text("SELECT candle_ms, count(*), max(id) FROM equity_snapshot WHERE id > :lo "
                                 "GROUP BY candle_ms"), {"lo": self.lo}).all()
        for candle, count, _ in rows:
            total = self.frozen.get(candle, 0) + count
            history = self.samples[candle]
            if not history or history[-1][1] != total:
                history.append((now, total))
        top = max((r[2] for r in rows), default=self.lo)
        self.seen.append((now, top))
        settled = max((i for t, i in self.seen if t <= now - self.settle_s), default=self.lo)
        if settled > self.lo:
            for candle, count in conn.execute(text(
                    "SELECT candle_ms, count(*) FROM equity_snapshot WHERE id > :lo AND id <= :hi GROUP BY candle_ms"),
                    {"lo": self.lo, "hi": settled}):
                self.frozen[candle] += count
            self.lo = settled
            self.seen = [(t, i) for t, i in self.seen if t > now - self.settle_s]

    def _loop(self) -> None:
        try:
            with self.engine.connect() as conn:
                while not self._stop.wait(self.interval_s):
                    self._poll(conn)
                    conn.commit()  # end the read transaction: the next poll sees new commits
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            self.error = f"{type(exc).__name__}: {exc}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="commit-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.engine.dispose()

    def lags(self, clock: SimWallClock, candles: list[int], expected_per_candle: int) -> tuple[list[float], int]:
        """Visible lags (s) of the rows of ``candles`` (open times), and how many never appeared."""
        out: list[float] = []
        missing = 0
        for candle in candles:
            closed = clock.wall_of(candle + MINUTE_MS)
            previous = 0
            for t, total in self.samples.get(candle, []):
                out.extend([t - closed] * (total - previous))
                previous = total
            missing += max(0, expected_per_candle - previous)
        return sorted(out), missing


# --------------------------------------------------------------------------------------- processes


@dataclass
class ProcSampler:
    """Samples RSS of the worker's process tree (peak) and CPU time per process group."""

    stack: Any
    db_name: str = ""
    interval_s: float = 1.0
    peak_rss: int = 0
    last_rss: int = 0
    peak_pss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    def tree(self, name: str) -> list[psutil.Process]:
        proc = self.stack.procs.get(name)
        if proc is None or proc.poll() is not None:
            return []
        try:
            root = psutil.Process(proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def worker_memory(self) -> tuple[int, int]:
        """(RSS, PSS) summed over the worker's process tree. RSS counts the pages the prefork
        children share with their parent once per process; PSS splits shared pages between them."""
        rss = pss = 0
        for p in self.tree("worker"):
            try:
                info = p.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            except psutil.NoSuchProcess:
                pass
            except psutil.AccessDenied:
                rss += p.memory_info().rss
        return rss, pss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss, pss = self.worker_memory()
            if rss:
                self.last_rss = rss
                self.peak_rss = max(self.peak_rss, rss)
                self.peak_pss = max(self.peak_pss, pss)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each group of processes."""
        groups: dict[str, list[psutil.Process]] = {
            name: self.tree(name) for name in ("worker", "beat", "simulator")
        }
        groups["postgres"] = []
        groups["redis"] = []
        for p in psutil.process_iter(["name", "cmdline"]):
            name = p.info["name"] or ""
            if name.startswith("postgres"):
                # A backend's title names its database ("postgres: 15/main: postgres <db> 127.0.0.1(...)"):
                # backends of other databases (other people's tests) count as "other".
                title = " ".join(p.info["cmdline"] or [])
                if self.db_name in title or not re.search(r"\(\d+\)|\[local\]", title):
                    groups["postgres"].append(p)
            elif name.startswith("redis-server"):
                groups["redis"].append(p)
        groups["bench"] = [psutil.Process()]
        out: dict[str, float] = {}
        for name, procs in groups.items():
            total = 0.0
            for p in procs:
                try:
                    # keep the object: per-pid CPU of processes that exit in the window is lost either way
                    p = self._seen.setdefault(p.pid, p)
                    t = p.cpu_times()
                    total += t.user + t.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            out[name] = total
        # Everything else this machine ran (other users' tests, the kernel...): busy time of all CPUs.
        t = psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        out["other"] = busy - sum(out.values())
        return out


# -------------------------------------------------------------------------------------------- setup


def random_params(klass: type, rng: random.Random) -> dict[str, Any]:
    """Parameters drawn uniformly within the declared ranges (``low + k * step``, read from the strategy's
    parameter JSON schema), redrawn until the strategy's own cross-parameter check (``check_params``:
    sma_cross needs fast < slow, checked in its sandboxed runner) accepts them."""
    from tradefleet.strategy.params import ParamError

    properties = klass.params_schema()["properties"]
    for _ in range(1000):
        values: dict[str, Any] = {}
        for name, p in properties.items():
            low, high, step = p.get("minimum"), p.get("maximum"), p.get("x-step")
            if p.get("type") == "integer":
                values[name] = rng.randrange(int(low), int(high) + 1, int(step or 1))
            elif p.get("type") == "number":
                if step:
                    values[name] = low + step * rng.randint(0, int(round((high - low) / step)))
                else:
                    values[name] = rng.uniform(low, high)
            else:
                values[name] = p.get("default")
        try:
            return klass.validate_params(values)
        except ParamError:
            continue
    raise RuntimeError(f"cannot draw valid parameters for {klass.name}")


def create_fleet(n_runs: int, seed: int, stake: float) -> list[tuple[Any, Any]]:
    """Users and runs through the services; returns ``[(owner, run)]`` (runs created, not started)."""
    from tradefleet.config import get_settings
    from tradefleet.db import session_scope
    from tradefleet.models import RunCreate, UserCreate
    from tradefleet.services.runs import create_run
    from tradefleet.services.users import create_user
    from tradefleet.sandbox.registry import get_registry

    rng = random.Random(seed)
    registry = get_registry()
    per_user = get_settings().MAX_RUNS_PER_USER
    n_users = math.ceil(n_runs / per_user)
    out = []
    with session_scope() as session:
        users = [create_user(session=session, user_in=UserCreate(email=f"bench-{i:04d}@example.com",
                                                                   password=secrets.token_urlsafe(12)))
                 for i in range(n_users)]
        for i in range(n_runs):
            strategy = STRATEGIES[i % len(STRATEGIES)]
            symbol = MARKETS[(i // len(STRATEGIES)) % len(MARKETS)]
            params = random_params(registry.get(strategy), rng)
            owner = users[i // per_user]
            run = create_run(session=session, owner=owner, run_in=RunCreate(
                strategy=strategy, params=params, exchange="binance", symbol=symbol, timeframe="1m",
                stake=stake))
            out.append((owner, run))
            if (i + 1) % 250 == 0:
                log(f"  created {i + 1}/{n_runs} runs")
    return out


def start_fleet(fleet: list[tuple[Any, Any]]) -> None:
    from tradefleet.db import session_scope
    from tradefleet.services.runs import start_run

    with session_scope() as session:
        for owner, run in fleet:
            start_run(session=session, owner=owner, run_id=run.id)


# ------------------------------------------------------------------------------------------ figures


def worker_task_stats(log_path: Path, since: float, until: float) -> dict[str, Any]:
    """Durations of the ``evaluate_market`` tasks that succeeded in [since, until] (worker log)."""
    pattern = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}).*evaluated TickReport\(market='([^']+)', "
                         r"candle_ms=(\d+), runs=(\d+), ticks=(\d+), paused=(\d+), orders=(\d+), fills=(\d+), "
                         r"seconds=([0-9.e-]+)")
    seconds, runs, busy = [], [], 0
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        m = pattern.search(line)
        if not m:
            continue
        stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
        if since <= stamp <= until:
            seconds.append(float(m.group(9)))
            runs.append(int(m.group(4)))
            found = re.search(r"busy=(\d+)", line)
            busy += int(found.group(1)) if found else 0
    if not seconds:
        return {"tasks": 0}
    return {"tasks": len(seconds), "runs_per_task_mean": statistics.fmean(runs),
            "seconds_mean": statistics.fmean(seconds), "seconds_max": max(seconds),
            "ms_per_run": 1000 * sum(seconds) / max(1, sum(runs)), "busy_skips": busy}


def measure(args: argparse.Namespace, engine: Any, clock: SimWallClock, t0: float, t1: float,
            stats0: dict, stats1: dict, stats_end: dict, fetches_end: dict[str, int],
            poller: CommitPoller) -> dict[str, Any]:
    """Figures from the database and the counters; see the module docstring."""
    from tradefleet.times import last_closed_candle_ms

    tf = MINUTE_MS
    # Candles that closed inside the window, per market (the same times for every 1m market).
    first_close = math.ceil(clock.sim_of(t0) / tf) * tf
    last_close = math.floor(clock.sim_of(t1) / tf) * tf
    window_candles = list(range(first_close - tf, last_close, tf))  # open times
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT id, symbol, status, last_candle_ms FROM run")).all()
        running = {r.id: r.symbol for r in runs if r.status == "running"}
        paused = sum(1 for r in runs if r.status == "paused")
        snaps = conn.execute(text(
            "SELECT s.run_id, s.candle_ms, extract(epoch from s.evaluated_at) AS at FROM equity_snapshot s "
            "WHERE s.candle_ms >= :lo OR s.evaluated_at >= to_timestamp(:t0)"),
            {"lo": window_candles[0] if window_candles else 0, "t0": t0}).all()
        all_candles = conn.execute(text(
            "SELECT r.symbol, count(DISTINCT s.candle_ms) FROM equity_snapshot s JOIN run r ON r.id = s.run_id "
            "GROUP BY r.symbol")).all()
        skipped = conn.execute(text("SELECT count(*) FROM run_event WHERE kind = 'skipped'")).scalar_one()
        pause_reasons = conn.execute(text(
            "SELECT status_reason, count(*) FROM run WHERE status = 'paused' GROUP BY 1 ORDER BY 2 DESC LIMIT 3")).all()
        counts = conn.execute(text(
            "SELECT (SELECT count(*) FROM \"order\"), (SELECT count(*) FROM fill), (SELECT count(*) FROM trade)")).one()

    # Throughput: snapshots evaluated inside the window.
    in_window = [s for s in snaps if t0 <= float(s.at) <= t1]
    per_run_window: dict[Any, int] = defaultdict(int)
    for s in in_window:
        per_run_window[s.run_id] += 1
    covered = [per_run_window.get(rid, 0) for rid in running]

    # Lag: every (running run, candle that closed in the window); a missing tick is infinitely late.
    wanted = set(window_candles)
    observed: dict[tuple, float] = {}
    for s in snaps:
        if s.candle_ms in wanted and s.run_id in running:
            observed[(s.run_id, s.candle_ms)] = float(s.at) - clock.wall_of(s.candle_ms + tf)
    lags = sorted(observed.values())
    expected = len(running) * len(window_candles)
    missing = expected - len(observed)
    lags_all = lags + [math.inf] * missing
    visible, visible_missing = poller.lags(clock, window_candles, len(running))
    visible_all = visible + [math.inf] * visible_missing

    # Market data: klines requests per distinct evaluated candle, per market, over the whole bench.
    sim_klines = {f"{s[:3]}/{s[3:]}": v.get("1m", 0) for s, v in stats_end["klines"].items()}
    distinct = {symbol: n for symbol, n in all_candles}
    per_market = {}
    for symbol in MARKETS:
        requests = sim_klines.get(symbol, 0)
        candles = distinct.get(symbol, 0)
        per_market[symbol] = {
            "klines_requests": requests,
            "redis_fetch_counter": fetches_end.get(symbol, 0),
            "candles_evaluated": candles,
            "requests_per_candle": requests / candles if candles else float("nan"),
        }
    window_s = t1 - t0
    d_time = stats1["requests"].get("/api/v3/time", 0) - stats0["requests"].get("/api/v3/time", 0)
    d_klines = stats1["requests"].get("/api/v3/klines", 0) - stats0["requests"].get("/api/v3/klines", 0)
    other = {p: n for p, n in stats_end["requests"].items()
             if p not in ("/api/v3/klines", "/api/v3/time", "/sim/status", "/sim/stats", "/api/v3/ping")}

    # Runs behind at the end of the window.
    latest = last_closed_candle_ms(int(clock.sim_of(t1)), "1m")
    latest_target = last_closed_candle_ms(int(clock.sim_of(t1 - args.target_p99)), "1m")
    return {
        "window_s": window_s,
        "candles_closed_in_window": len(window_candles),
        "run_ticks": len(in_window),
        "run_ticks_per_s": len(in_window) / window_s,
        "run_ticks_needed_per_s": len(running) * clock.speed / 60.0,
        "candles_per_run_mean": statistics.fmean(covered) if covered else 0.0,
        "candles_per_run_min": min(covered) if covered else 0,
        "lag_samples": len(lags),
        "lag_missing": missing,
        "lag_p50_s": percentile(lags_all, 0.50),
        "lag_p99_s": percentile(lags_all, 0.99),
        "lag_max_s": lags_all[-1] if lags_all else float("nan"),
        "lag_min_s": lags[0] if lags else float("nan"),
        "visible_lag_p50_s": percentile(visible_all, 0.50),
        "visible_lag_p99_s": percentile(visible_all, 0.99),
        "visible_lag_max_s": visible_all[-1] if visible_all else float("nan"),
        "visible_lag_missing": visible_missing,
        "visible_lag_poll_s": poller.interval_s,
        "visible_lag_error": poller.error,
        "markets": per_market,
        "klines_requests_per_candle_max": max((m["requests_per_candle"] for m in per_market.values()),
                                              default=float("nan")),
        "klines_requests_per_s_window": d_klines / window_s,
        "time_requests_per_s": d_time / window_s,
        "other_requests": other,
        "runs_running": len(running),
        "runs_paused": paused,
        "pause_reasons": [[reason, n] for reason, n in pause_reasons],
        "catchup_skips": skipped,
        "latest_closed_candle_ms_at_end": latest,
        "latest_closed_candle_ms_target": latest_target,
        "orders": counts[0], "fills": counts[1], "trades": counts[2],
    }


def runs_behind(engine: Any, latest: int, latest_target: int) -> tuple[int, int, int]:
    """(runs behind ``latest``, runs behind ``latest_target``, most candles behind) among running runs."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT last_candle_ms FROM run WHERE status = 'running'")).scalars().all()
    behind = [r for r in rows if r is None or r < latest]
    late = [r for r in rows if r is None or r < latest_target]
    worst = max(((latest - (r or 0)) // MINUTE_MS for r in behind), default=0)
    return len(behind), len(late), int(worst)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs", type=int, default=1000, help="paper runs in the fleet")
    p.add_argument("--speed", type=float, default=DEFAULT_SPEED,
                   help="simulator speed (sim seconds per wall second; 1 = a real exchange)")
    p.add_argument("--duration", type=float, default=120.0, help="measured seconds (wall)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds of fleet running before measuring")
    p.add_argument("--drain", type=float, default=30.0,
                   help="at most this many seconds after the window for its last candles to be evaluated")
    p.add_argument("--seed", type=int, default=20240101, help="seed of the strategies' parameters")
    p.add_argument("--start", default="2024-01-02T00:00:00Z",
                   help="simulator clock start (ISO UTC); a day in, so the longest SMA has its history")
    p.add_argument("--stake", type=float, default=1000.0, help="stake per run (USDT)")
    p.add_argument("--concurrency", type=int, default=2, help="Celery worker processes (prefork)")
    p.add_argument("--schedule-interval", type=float, default=None,
                   help="SCHEDULE_INTERVAL_S for beat (default: the platform's setting)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="ENGINE_BATCH_SIZE (default: the platform's setting)")
    p.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                   help="PostgreSQL server (a database of it is used to create and drop the bench's)")
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
                   help="Redis database for the broker and cache (FLUSHED at start and end)")
    p.add_argument("--target-p99", type=float, default=5.0, help="p99 tick lag target, seconds")
    p.add_argument("--keep", action="store_true", help="keep the database and the Redis data")
    p.add_argument("--json", action="store_true", help="print one JSON object of the figures (stdout)")
    return p.parse_args(argv)


def configure(env: dict[str, str]) -> None:
    """Point this process's settings, engine, cache and ccxt at the bench's services."""
    os.environ.update(env)
    from tradefleet.cache import get_cache
    from tradefleet.config import get_settings
    from tradefleet.db import reset_engine
    from tradefleet.market.candles import public_exchange

    get_settings.cache_clear()
    reset_engine()
    get_cache.cache_clear()
    public_exchange.cache_clear()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import redis

    from tradefleet.devstack import Stack

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = REPO / "var" / "bench" / f"fleet-{stamp}"
    server = make_url(args.postgres).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    db_name = f"tradefleet_bench_{secrets.token_hex(4)}"
    db_url = server.set(database=db_name).render_as_string(hide_password=False)
    redis_client = redis.Redis.from_url(args.redis)
    redis_client.flushdb()
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = {
        "ENVIRONMENT": "local",
        "DATABASE_URL": db_url,
        "REDIS_URL": args.redis,
        "CELERY_BROKER_URL": args.redis,
        "EXCHANGE_API_URLS": json.dumps({"binance": sim_url}),
        "EXCHANGES_ENABLED": "binance",
        "JWT_SECRET_KEY": "bench-" + secrets.token_hex(16),
        "PYTHONUNBUFFERED": "1",
    }
    if args.schedule_interval is not None:
        env["SCHEDULE_INTERVAL_S"] = str(args.schedule_interval)
    if args.batch_size is not None:
        env["ENGINE_BATCH_SIZE"] = str(args.batch_size)

    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    log(f"database {db_name}, redis {args.redis}, logs in {log_dir}")
    stack = Stack(env=env, log_dir=log_dir, grace_s=20)
    sampler = ProcSampler(stack, db_name=db_name)
    poller = CommitPoller(db_url)
    result: dict[str, Any] = {}
    try:
        configure(env)
        from tradefleet.config import get_settings
        from tradefleet.db import get_engine, session_scope
        from tradefleet.market.catalog import refresh_catalog
        from tradefleet.migrations import upgrade

        settings = get_settings()
        upgrade("head")
        log(f"simulator at {args.speed:g}x from {args.start}")
        stack.simulator(port=sim_port, speed=args.speed, start=args.start)
        with session_scope() as session:
            n_markets = refresh_catalog(session=session, exchange_id="binance")
        log(f"catalog: {n_markets} markets; creating {args.runs} runs")
        started = time.monotonic()
        fleet = create_fleet(args.runs, args.seed, args.stake)
        log(f"created {len(fleet)} runs for {math.ceil(args.runs / settings.MAX_RUNS_PER_USER)} users "
            f"in {time.monotonic() - started:.1f} s; starting them")
        start_fleet(fleet)
        stack.worker(concurrency=args.concurrency, name="worker", pool="prefork")
        stack.beat(schedule_file=log_dir / "celerybeat-schedule")
        sampler.start()
        poller.start()
        clock = SimWallClock(sim_url)
        log(f"sim clock: speed {clock.speed:g}, mapping uncertainty ±{clock.uncertainty_s * 1000:.2f} ms; "
            f"warm-up {args.warmup:g} s")
        deadline = time.monotonic() + args.warmup
        while time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(0.5)

        def sim_stats() -> dict:
            return httpx.get(f"{sim_url}/sim/stats", timeout=5).json()

        cpu0 = sampler.cpu_seconds()
        stats0 = sim_stats()
        t0 = time.time()
        log(f"measuring for {args.duration:g} s")
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        t1 = time.time()
        stats1 = sim_stats()
        cpu1 = sampler.cpu_seconds()
        rss_end, pss_end = sampler.worker_memory()
        engine = get_engine()
        from tradefleet.times import last_closed_candle_ms

        latest = last_closed_candle_ms(int(clock.sim_of(t1)), "1m")
        latest_target = last_closed_candle_ms(int(clock.sim_of(t1 - args.target_p99)), "1m")
        n_behind, n_late, worst = runs_behind(engine, latest, latest_target)
        # Let the window's last candles be evaluated (their lag is part of the figures).
        log(f"window done; draining up to {args.drain:g} s")
        last_window_candle = math.floor(clock.sim_of(t1) / MINUTE_MS) * MINUTE_MS - MINUTE_MS
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            if runs_behind(engine, last_window_candle, last_window_candle)[0] == 0:
                break
            time.sleep(0.5)
        drift = clock.check()
        stats_end = sim_stats()
        fetches = {}
        for symbol in MARKETS:
            value = redis_client.get(f"metrics:ohlcv_fetches:binance:{symbol}:1m")
            fetches[symbol] = int(value or 0)
        sampler.stop()
        poller.stop()
        result = measure(args, engine, clock, t0, t1, stats0, stats1, stats_end, fetches, poller)
        cpu = {name: (cpu1.get(name, 0.0) - cpu0.get(name, 0.0)) / (t1 - t0) for name in cpu1}
        result.update(
            runs=args.runs, speed=clock.speed, seconds_per_candle=60.0 / clock.speed,
            schedule_interval_s=settings.SCHEDULE_INTERVAL_S, batch_size=settings.ENGINE_BATCH_SIZE,
            concurrency=args.concurrency, cores=psutil.cpu_count(),
            clock_uncertainty_ms=clock.uncertainty_s * 1000, clock_drift_ms=drift * 1000,
            runs_behind_at_end=n_behind, runs_behind_more_than_target=n_late, most_candles_behind=worst,
            worker_rss_end_mb=rss_end / 2**20, worker_rss_peak_mb=sampler.peak_rss / 2**20,
            worker_pss_end_mb=pss_end / 2**20, worker_pss_peak_mb=sampler.peak_pss / 2**20,
            worker_processes=len(sampler.tree("worker")),
            cpu_cores_used=cpu,
            tasks=worker_task_stats(log_dir / "worker.log", t0, t1),
            speed_note=SPEED_NOTE.format(speed=clock.speed, every=60.0 / clock.speed,
                                         need=args.runs * clock.speed / 60, prod=args.runs / 60, runs=args.runs,
                                         default=DEFAULT_SPEED),
            log_dir=str(log_dir),
        )
        checks = {
            f"p99 tick lag < {args.target_p99:g} s": result["lag_p99_s"] < args.target_p99,
            # Never two requests for one candle; fewer requests than candles means the scheduler
            # was late and one fetch served two candles (reported as coalesced).
            "one klines request per market per candle": all(
                0 < m["klines_requests"] <= m["candles_evaluated"]
                and m["klines_requests"] == m["redis_fetch_counter"] for m in result["markets"].values()),
            "no paused run": result["runs_paused"] == 0,
            "no missing tick": result["lag_missing"] == 0,
            f"no run behind by more than {args.target_p99:g} s": n_late == 0,
        }
        result["checks"] = checks
        result["pass"] = all(checks.values())
    finally:
        sampler.stop()
        poller.stop()
        stack.stop()
        from tradefleet.db import reset_engine

        reset_engine()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            redis_client.flushdb()
            log(f"dropped {db_name}, flushed {args.redis}")
        else:
            log(f"kept database {db_url} and redis {args.redis}")
        admin.dispose()
    if args.json:
        print(json.dumps(_finite(result), default=str, sort_keys=True))
    else:
        report(result, args)
    return 0 if result.get("pass") else 1


def _finite(value: Any) -> Any:
    """``value`` with infinite and NaN floats as ``null`` (strict JSON; ``lag_missing`` says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    out = print
    out(f"Tradefleet fleet benchmark: {r['runs']} paper runs (sma_cross + rsi_reversion, 1m) on "
        f"{', '.join(MARKETS)}, {r['cores']} cores")
    out(f"  simulator {r['speed']:g}x (a 1m candle every {r['seconds_per_candle']:.2f} s), worker prefork x"
        f"{r['concurrency']}, SCHEDULE_INTERVAL_S={r['schedule_interval_s']:g}, ENGINE_BATCH_SIZE={r['batch_size']}")
    out(f"  speed: {r['speed_note']}")
    out(f"  window {r['window_s']:.0f} s after {args.warmup:g} s warm-up: {r['candles_closed_in_window']} candles "
        f"closed per market")
    out("")
    out(f"throughput       {r['run_ticks_per_s']:8.1f} run-ticks/s  (needed {r['run_ticks_needed_per_s']:.1f}/s); "
        f"candles per run {r['candles_per_run_mean']:.1f} mean, {r['candles_per_run_min']} min, "
        f"of {r['candles_closed_in_window']}")
    out(f"tick lag         p50 {r['lag_p50_s']:.2f} s   p99 {r['lag_p99_s']:.2f} s   max {r['lag_max_s']:.2f} s   "
        f"(min {r['lag_min_s']:.2f} s; {r['lag_samples']} ticks, {r['lag_missing']} missing; "
        f"clock map ±{r['clock_uncertainty_ms']:.1f} ms, drift {r['clock_drift_ms']:.1f} ms)")
    out(f"  committed      p50 {r['visible_lag_p50_s']:.2f} s   p99 {r['visible_lag_p99_s']:.2f} s   max "
        f"{r['visible_lag_max_s']:.2f} s   (when the tick's transaction is visible to readers, polled every "
        f"{r['visible_lag_poll_s']:g} s; {r['visible_lag_missing']} missing"
        + (f"; poller error: {r['visible_lag_error']}" if r["visible_lag_error"] else "") + ")")
    for symbol, m in r["markets"].items():
        coalesced = m["candles_evaluated"] - m["klines_requests"]
        out(f"market data      {symbol:9s} {m['klines_requests']} klines requests / {m['candles_evaluated']} candles "
            f"= {m['requests_per_candle']:.3f} per candle (Redis fetch counter {m['redis_fetch_counter']})"
            + (f"; {coalesced} candles coalesced into another's fetch" if coalesced > 0 else ""))
    out(f"                 /api/v3/time {r['time_requests_per_s']:.2f}/s, klines {r['klines_requests_per_s_window']:.2f}/s; "
        f"other requests: {r['other_requests']}")
    out(f"worker memory    RSS of the process tree ({r['worker_processes']} processes): {r['worker_rss_end_mb']:.0f} MB "
        f"at the end, {r['worker_rss_peak_mb']:.0f} MB peak (PSS, shared pages counted once: "
        f"{r['worker_pss_end_mb']:.0f} MB, peak {r['worker_pss_peak_mb']:.0f} MB)")
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["cpu_cores_used"].items(), key=lambda kv: -kv[1]))
    out(f"cpu (cores)      {cpu}")
    if r["cpu_cores_used"].get("other", 0.0) > 0.2:
        out(f"                 WARNING: processes outside the benchmark used {r['cpu_cores_used']['other']:.2f} cores "
            "during the window (postgres and redis count everyone's queries): the figures are pessimistic")
    t = r["tasks"]
    if t.get("tasks"):
        out(f"tasks            {t['tasks']} evaluate_market in the window, {t['runs_per_task_mean']:.0f} runs each, "
            f"{t['seconds_mean']:.2f} s mean, {t['seconds_max']:.2f} s max, {t['ms_per_run']:.2f} ms per run-tick; "
            f"{t['busy_skips']} runs skipped as busy (row held by another task) and retried")
    out(f"runs             {r['runs_running']} running, {r['runs_paused']} paused, {r['catchup_skips']} catch-up skips; "
        f"behind at the end: {r['runs_behind_at_end']} (latest closed candle), "
        f"{r['runs_behind_more_than_target']} by more than {args.target_p99:g} s, worst {r['most_candles_behind']} candles")
    out(f"                 {r['orders']} orders, {r['fills']} fills, {r['trades']} trades")
    if r["pause_reasons"]:
        out(f"                 pause reasons: {r['pause_reasons']}")
    out("")
    for name, ok in r["checks"].items():
        out(f"{'PASS' if ok else 'FAIL'}  {name}")
    out(f"{'PASS' if r['pass'] else 'FAIL'}  overall ({r['runs']} runs at {r['speed']:g}x)")


if __name__ == "__main__":
    sys.exit(main())
