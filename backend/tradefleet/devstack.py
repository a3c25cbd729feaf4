"""Starting the platform's processes on one machine: simulator, API, the two Celery workers (tick
and backtest, :mod:`tradefleet.jobs.queues`) and beat.

Used by ``tradefleet dev`` (``make run``), the end-to-end tests and the fleet benchmark, so that all
three run the same real processes the same way. Each child gets its own process group; stopping the
stack sends SIGTERM to every group and SIGKILL to any still alive after ``grace_s``.

Keys that open stored exchange keys (:data:`DECRYPTION_SETTINGS`) reach Celery workers only: every
other child (API, beat, simulator, CLI) gets them blanked out, which also overrides a ``.env``
holding them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from tradefleet.config import REPO_ROOT
from tradefleet.jobs.queues import queue_arg

BIN = Path(sys.executable).parent

DECRYPTION_SETTINGS = ("VAULT_PRIVATE_KEYS", "VAULT_PRIVATE_KEYS_FILE", "API_ENCRYPTION_KEYS")
"""Settings only a Celery worker may receive (SECRETS.md: the API and beat hold public keys only)."""


def is_celery_worker(args: tuple[str, ...] | list[str]) -> bool:
    """Whether ``args`` start a Celery worker (``.../celery -A ... worker ...``)."""
    return bool(args) and Path(args[0]).name == "celery" and "worker" in args[1:]


@dataclass
class Stack:
    """A set of child processes sharing one environment.

    ``env`` is added to the current environment (``DATABASE_URL``, ``REDIS_URL``,
    ``EXCHANGE_API_URLS``...); ``worker_env`` too, for Celery workers only (the vault's private
    keys). ``log_dir``, if set, receives one ``<name>.log`` per process; otherwise children write to
    this process's stdout and stderr.
    """

    env: dict[str, str] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    grace_s: float = 15.0
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _logs: list[IO] = field(default_factory=list)

    def full_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def env_for(self, args: tuple[str, ...] | list[str], *, decrypts: bool | None = None) -> dict[str, str]:
        """The environment of a child running ``args``: :meth:`full_env`, plus ``worker_env`` when it
        ``decrypts`` (default: when it is a Celery worker), else with every
        :data:`DECRYPTION_SETTINGS` blanked."""
        env = self.full_env()
        if decrypts is None:
            decrypts = is_celery_worker(args)
        if decrypts:
            env.update(self.worker_env)
        else:
            env.update({name: "" for name in DECRYPTION_SETTINGS})
        return env

    def spawn(self, name: str, *args: str, decrypts: bool | None = None, nice: int = 0) -> subprocess.Popen:
        """Start ``args`` as the process ``name`` in its own process group, in :meth:`env_for`;
        ``nice`` (0-19) lowers its CPU priority (``os.nice`` in the child before it runs ``args``)."""
        stdout = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            self._logs.append(handle)
            stdout = handle
        proc = subprocess.Popen(list(args), env=self.env_for(args, decrypts=decrypts), cwd=REPO_ROOT, stdout=stdout,
                                stderr=subprocess.STDOUT if stdout else None, start_new_session=True,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)
        self.procs[name] = proc
        return proc

    # ------------------------------------------------------------------ the platform's processes
    def simulator(self, *, port: int = 8100, speed: float = 60.0, start: str | None = None,
                  accounts: Path | None = None, state_file: Path | None = None) -> str:
        """Start the exchange simulator; returns its base URL once it answers.

        ``accounts``: JSON file of simulated exchange accounts (``exchange-sim --accounts``);
        ``state_file``: where the simulator keeps accounts, orders and trades across its restarts.
        """
        args = [str(BIN / "tradefleet"), "exchange-sim", "--port", str(port), "--speed", str(speed)]
        if start:
            args += ["--start", start]
        if accounts:
            args += ["--accounts", str(accounts)]
        if state_file:
            args += ["--state-file", str(state_file)]
        self.spawn("simulator", *args)
        url = f"http://127.0.0.1:{port}"
        self.wait_http(f"{url}/api/v3/ping")
        return url

    def worker(self, *, concurrency: int = 2, name: str = "worker", pool: str = "prefork") -> subprocess.Popen:
        """The tick worker: queues ``schedule``, ``evaluate`` and ``default`` (never ``backtests``)."""
        return self.spawn(name, str(BIN / "celery"), "-A", "tradefleet.worker.app", "worker",
                          "-Q", queue_arg("tick"), "--concurrency", str(concurrency), "--pool", pool,
                          "--loglevel", "INFO", "-n", f"{name}@%h")

    def backtest_worker(self, *, concurrency: int | None = None, nice: int | None = None,
                        name: str = "backtest-worker", pool: str = "prefork") -> subprocess.Popen:
        """The backtest worker: queue ``backtests`` only (backtests, their candle downloads, strategy
        validations, ``backtest.expire``), ``concurrency`` processes (default
        ``BACKTEST_WORKER_CONCURRENCY``) at CPU priority ``nice`` (default ``BACKTEST_WORKER_NICE``).
        It gets no key that opens stored exchange keys: nothing on its queue trades."""
        from tradefleet.config import get_settings

        settings = get_settings()
        concurrency = settings.BACKTEST_WORKER_CONCURRENCY if concurrency is None else concurrency
        nice = settings.BACKTEST_WORKER_NICE if nice is None else nice
        return self.spawn(name, str(BIN / "celery"), "-A", "tradefleet.worker.app", "worker",
                          "-Q", queue_arg("backtest"), "--concurrency", str(concurrency), "--pool", pool,
                          "--loglevel", "INFO", "-n", f"{name}@%h", decrypts=False, nice=nice)

    def workers(self, *, concurrency: int = 2, backtest_concurrency: int | None = None,
                name: str = "worker") -> tuple[subprocess.Popen, subprocess.Popen]:
        """Both workers: :meth:`worker` (``name``) and :meth:`backtest_worker` (``<name>-backtests``)."""
        return (self.worker(concurrency=concurrency, name=name),
                self.backtest_worker(concurrency=backtest_concurrency, name=f"{name}-backtests"))

    def beat(self, *, schedule_file: Path) -> subprocess.Popen:
        schedule_file.parent.mkdir(parents=True, exist_ok=True)
        return self.spawn("beat", str(BIN / "celery"), "-A", "tradefleet.worker.app", "beat",
                          "--loglevel", "INFO", "-s", str(schedule_file))

    def api(self, *, port: int = 8000, host: str = "127.0.0.1") -> str:
        """Start uvicorn on ``host``; returns the base URL (on 127.0.0.1) once ``/api/v1/health``
        answers. Uvicorn's own proxy headers are off: the client IP is decided by ``TRUSTED_PROXIES``
        alone (:func:`tradefleet.security.ratelimit.client_ip`)."""
        self.spawn("api", str(BIN / "uvicorn"), "tradefleet.api.main:app", "--host", host,
                   "--port", str(port), "--no-access-log", "--no-proxy-headers")
        url = f"http://127.0.0.1:{port}"
        self.wait_http(f"{url}/api/v1/health")
        return url

    # ------------------------------------------------------------------ control
    def wait_http(self, url: str, timeout_s: float = 60.0) -> None:
        """Wait until ``url`` answers at all (any status: a degraded health check is still up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                httpx.get(url, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"{url} did not answer in {timeout_s:g} s")

    def check_alive(self) -> None:
        """Raise ``RuntimeError`` naming the first child that has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}")

    def stop(self) -> None:
        """SIGTERM every child's group, wait, then SIGKILL what is left."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + self.grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
