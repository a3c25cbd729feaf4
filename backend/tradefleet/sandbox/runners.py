"""Runner processes and this process's pool of them: one sandboxed (or, where allowed, plain) Python
process per strategy file, serving requests over two pipes with the parent's deadlines.

A runner is started by :meth:`RunnerProcess.start` (its first frame says ``ready`` with the manifest,
or ``load_error``), held stopped (SIGSTOP) between requests, and killed with SIGKILL on a timeout, a
death or an invalid reply (:meth:`RunnerProcess.request`). :class:`RunnerPool` keeps at most
``STRATEGY_RUNNERS_PER_PROCESS`` runners by content hash, least recently used stopped first, and drops
(without touching) the runners it inherited across ``fork``.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tradefleet.config import get_settings
from tradefleet.sandbox import protocol
from tradefleet.sandbox.errors import RunnerFailure, StrategyLoadError
from tradefleet.sandbox.launch import LAUNCH_ENV, bwrap_command, unsandboxed_command
from tradefleet.strategy.guard import StrategyTimeout

log = logging.getLogger(__name__)


class RunnerSource(Protocol):
    """What a runner is started from (a :class:`~tradefleet.sandbox.proxy.StrategyProxy` is one): the
    file's bytes, their :func:`content_hash`, a label for messages, and whether it runs in bubblewrap."""

    content_hash: str
    source: bytes
    label: str
    sandboxed: bool


def content_hash(source: bytes) -> str:
    """The version identity of a strategy file: SHA-256 of its bytes, hex."""
    return hashlib.sha256(source).hexdigest()


_files_dir: Path | None = None
_files_lock = threading.Lock()


def strategy_file(digest: str, source: bytes) -> Path:
    """The source written once per process to a private folder, to be bound read-only into sandboxes."""
    global _files_dir
    with _files_lock:
        if _files_dir is None or not _files_dir.is_dir():
            _files_dir = Path(tempfile.mkdtemp(prefix="tradefleet-strategies-"))
            atexit.register(shutil.rmtree, _files_dir, True)
        path = _files_dir / f"{digest}.py"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(source)
            tmp.chmod(0o644)
            tmp.replace(path)
        return path


def _runner_pid(pid: int) -> int | None:
    """The host pid of the Python process that runs the strategy: ``pid`` itself when unsandboxed, else
    the grandchild of ``bwrap`` (bwrap → its init in the new PID namespace → Python)."""
    def children(p: int) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            return []

    queue = [pid]
    for _ in range(4):
        found = []
        for p in queue:
            try:
                cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
            except OSError:
                continue
            if b"boot.py" in cmdline and b"bwrap" not in cmdline.split(b"\0", 1)[0]:
                return p
            found += children(p)
        queue = found
    return None


class RunnerProcess:
    """One runner: a sandboxed Python process serving one strategy file over two pipes."""

    _tokens = itertools.count(1)

    def __init__(self, *, digest: str, source: bytes, label: str, sandboxed: bool) -> None:
        self.digest, self.source, self.label, self.sandboxed = digest, source, label, sandboxed
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.owner = os.getpid()
        self.window_key: tuple | None = None
        self.window_frame: pd.DataFrame | None = None
        self.window_token = ""
        self.inner_pid: int | None = None
        self.requests = 0
        self.started = 0

    @classmethod
    def new_window_token(cls) -> str:
        """A token naming a candle window sent to a runner, unique in this process."""
        return f"w{next(cls._tokens)}"

    # ------------------------------------------------------------------ life
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> dict[str, Any]:
        """Start the process and read its first frame: ``ready`` with the manifest, or ``load_error``."""
        path = strategy_file(self.digest, self.source)
        module = f"tradefleet_strategy_{self.digest[:16]}"
        if self.sandboxed:
            argv, env = bwrap_command(path, self.label, module), dict(LAUNCH_ENV)
        else:
            argv, env = unsandboxed_command(path, self.label, module)
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        self.err_r, err_w = os.pipe()
        try:
            self.proc = subprocess.Popen(argv, stdin=req_r, stdout=rep_w, stderr=err_w, env=env, close_fds=True,
                                         start_new_session=True, cwd="/")
        finally:
            for fd in (req_r, rep_w, err_w):
                os.close(fd)
        for fd in (self.req_w, self.rep_r, self.err_r):
            os.set_blocking(fd, False)
        self.started += 1
        self.window_key, self.window_frame = None, None
        timeout = get_settings().STRATEGY_RUNNER_START_TIMEOUT_S
        try:
            header, _ = self._read(time.monotonic() + timeout, what="start")
        except TimeoutError as exc:
            self.stop()
            raise StrategyLoadError(f"{self.label}: the strategy runner did not start: it did not say ready "
                                    f"within {timeout:g} s") from exc
        except RunnerFailure as exc:
            self.stop()  # a runner that said something else may still be running: never leave it behind
            raise StrategyLoadError(f"{self.label}: the strategy runner did not start: {exc}") from exc
        except BaseException:
            # Interrupted (the guard's alarm): a runner that has not said ready would answer the next
            # request with its stale first frame.
            self.stop()
            raise
        if header.get("op") == "load_error":
            self.stop()
            raise StrategyLoadError(str(header.get("message", "the file could not be loaded"))[:2000])
        if header.get("op") != "ready":
            self.stop()
            raise StrategyLoadError(f"{self.label}: the strategy runner sent an unexpected first reply")
        self.inner_pid = _runner_pid(self.proc.pid)
        self._pause()
        return header.get("manifest")

    def stop(self) -> None:
        """SIGKILL the process (bubblewrap's namespace dies with it) and close the pipes."""
        proc, self.proc = self.proc, None
        self.inner_pid = None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("strategy runner %s did not exit after SIGKILL", proc.pid)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for name in ("req_w", "rep_r", "err_r"):
            fd = getattr(self, name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)

    def _signal(self, signum: int) -> None:
        if self.inner_pid is not None:
            try:
                os.kill(self.inner_pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def _pause(self) -> None:
        # Between requests the runner is stopped (SIGSTOP): whatever its code left behind (a replaced read
        # loop spinning, say) gets no CPU outside a request's budget.
        self._signal(signal.SIGSTOP)

    def _resume(self) -> None:
        self._signal(signal.SIGCONT)

    def forget(self) -> None:
        """Drop a runner inherited across fork without touching it (it belongs to the parent process)."""
        self.proc = None
        self.inner_pid = None
        self._close_pipes()

    def _exit_reason(self) -> str:
        proc = self.proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
        err = b""
        try:
            while self.err_r is not None and len(err) < 4096:
                chunk = os.read(self.err_r, 4096)
                if not chunk:
                    break
                err += chunk
        except (BlockingIOError, OSError):
            pass
        lines = err.decode(errors="replace").splitlines()
        for prefix in ("sandbox boot:", "bwrap:"):  # our boot's reason, else bubblewrap's own
            said = [line for line in lines if line.startswith(prefix)]
            if said:
                return said[-1][:300]
        if code is None:
            return "it stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"it was killed by {name}"
        return f"it exited with status {code}"

    # ------------------------------------------------------------------ I/O with deadlines
    def _read(self, deadline: float, *, what: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        limits = protocol.Limits(array_bytes=get_settings().STRATEGY_RUNNER_REPLY_MB << 20)

        def read(fd: int, n: int) -> bytes:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                ready, _, _ = select.select([fd], [], [], remaining)
                if ready:
                    try:
                        return os.read(fd, n)
                    except BlockingIOError:
                        continue

        try:
            return protocol.read_frame(self.rep_r, limits, read=read)
        except TimeoutError:
            raise
        except protocol.ProtocolError as exc:
            if str(exc) == "channel closed":
                raise RunnerFailure(self._exit_reason()) from exc
            raise RunnerFailure(f"it sent an invalid reply ({exc})") from exc

    def _write(self, frame: bytes, deadline: float) -> None:
        view = memoryview(frame)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, ready, _ = select.select([], [self.req_w], [], remaining)
            if not ready:
                continue
            try:
                view = view[os.write(self.req_w, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError as exc:
                raise RunnerFailure(self._exit_reason()) from exc

    def request(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None,
                budget_s: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Send one request and return the reply; on a timeout, a dead runner or an invalid reply the
        runner is killed and :class:`StrategyTimeout` or :class:`RunnerFailure` raised."""
        deadline = time.monotonic() + budget_s
        ok = False
        try:
            self._resume()
            self._write(protocol.encode(header, arrays), deadline)
            reply = self._read(deadline, what=header.get("op", "request"))
            self.requests += 1
            ok = True
            self._pause()
            return reply
        except TimeoutError as exc:
            raise StrategyTimeout(f"strategy took longer than {round(budget_s, 1):g} s; its runner was stopped") \
                from exc
        finally:
            if not ok:  # a half-done exchange leaves the channel unusable: never reuse it
                self.stop()


class RunnerPool:
    """The runner processes of this platform process, by content hash, least recently used first out."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.runners: OrderedDict[str, RunnerProcess] = OrderedDict()

    def _check_fork(self) -> None:
        if self.pid != os.getpid():  # inherited across fork (Celery prefork): these runners are not ours
            for runner in self.runners.values():
                runner.forget()
            self.runners.clear()
            self.pid = os.getpid()

    def get(self, proxy: RunnerSource) -> RunnerProcess:
        with self.lock:
            self._check_fork()
            runner = self.runners.get(proxy.content_hash)
            if runner is None:
                runner = RunnerProcess(digest=proxy.content_hash, source=proxy.source, label=proxy.label,
                                       sandboxed=proxy.sandboxed)
                self.runners[proxy.content_hash] = runner
            self.runners.move_to_end(proxy.content_hash)
            evicted = []
            while len(self.runners) > get_settings().STRATEGY_RUNNERS_PER_PROCESS:
                _, old = self.runners.popitem(last=False)
                evicted.append(old)
        for old in evicted:
            with old.lock:
                old.stop()
        return runner

    def peek(self, digest: str) -> RunnerProcess | None:
        """The runner of ``digest`` in this pool, if any, without starting or reordering anything."""
        with self.lock:
            self._check_fork()
            return self.runners.get(digest)

    def put_started(self, digest: str, runner: RunnerProcess) -> None:
        with self.lock:
            self._check_fork()
            self.runners[digest] = runner
            self.runners.move_to_end(digest)

    def stats(self) -> dict[str, Any]:
        """Runner processes alive in this process, for the system report."""
        with self.lock:
            self._check_fork()
            return {"runners": sum(1 for r in self.runners.values() if r.alive),
                    "starts": sum(r.started for r in self.runners.values())}

    def shutdown(self) -> None:
        with self.lock:
            runners = list(self.runners.values()) if self.pid == os.getpid() else []
            self.runners.clear()
        for runner in runners:
            runner.stop()


_pool = RunnerPool()
atexit.register(lambda: _pool.shutdown())


def runner_pool() -> RunnerPool:
    """This process's pool of runners."""
    return _pool
