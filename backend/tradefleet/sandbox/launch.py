"""How a runner process is started: the bubblewrap command line, what is bound into it, and whether the
sandbox can be created on this machine.

The sandbox (``bwrap``) gets new user, PID, network, IPC, UTS and cgroup namespaces, no capabilities, a
new session, an empty environment, and a filesystem of read-only binds only:

- the C libraries (``/usr/lib/<multiarch>``) and the Python interpreter with its standard library (the
  interpreter's own ``site-packages`` hidden under an empty tmpfs);
- ``/sandbox/lib``: the packages of ``STRATEGY_SANDBOX_PACKAGES`` (numpy, pandas and their dependencies),
  libseccomp's Python binding, and of the platform only the author SDK (``tradefleet/strategy``: base,
  params, context) and the runner (``tradefleet/sandbox``: boot, runner, protocol);
- ``/sandbox/strategy/<file>``: the one strategy file;
- a private ``/proc`` (only the sandbox's processes), a minimal ``/dev`` and a size-capped tmpfs ``/scratch``
  (``HOME`` and ``TMPDIR``).

Not there, so unreachable whatever the code does: the platform's settings, database, vault, keys and
``var/``, other strategy files, the network (no interface but a down loopback), the parent's memory and
environment. :mod:`tradefleet.sandbox.boot` then adds resource limits and the seccomp filter.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tradefleet.config import get_settings

PACKAGE = Path(__file__).resolve().parents[1]
"""The ``tradefleet`` package directory."""

SDK_FILES = ("__init__.py", "strategy/__init__.py", "strategy/base.py", "strategy/params.py",
             "strategy/context.py", "sandbox/__init__.py", "sandbox/protocol.py", "sandbox/runner.py",
             "sandbox/boot.py")
"""The platform's files a runner sees, relative to the package: the author SDK and the runner itself."""

LIB = "/sandbox/lib"
STRATEGY_DIR = "/sandbox/strategy"
SCRATCH = "/scratch"
"""The runner's private tmpfs (its ``HOME`` and ``TMPDIR``), capped at ``STRATEGY_RUNNER_SCRATCH_MB``."""
CHILD_ENV = {"HOME": SCRATCH, "TMPDIR": SCRATCH, "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
             "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
"""The runner's whole environment (numerical libraries single-threaded: one runner is one core at most)."""
LAUNCH_ENV = {"PATH": "/usr/bin:/bin"}
"""The environment ``bwrap`` itself is started with, so that not even its own memory holds a secret."""


@dataclass(frozen=True)
class SandboxStatus:
    """Whether strategy code can be confined here. ``mode``: ``bwrap`` (available), ``unsandboxed`` (not
    available; bundled files run in plain runner processes because the admin opted in) or ``unavailable``;
    ``reason`` says why it is not available."""

    available: bool
    mode: str
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"available": self.available, "mode": self.mode, "reason": self.reason}


def safe_label(label: str) -> str:
    """A file name for the strategy inside the sandbox: ``[A-Za-z0-9_.-]``, at most 100 characters, ``.py``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(label).name)[:97] or "strategy"
    return name if name.endswith(".py") else f"{name}.py"


def seccomp_binding() -> Path | None:
    """libseccomp's Python binding for this interpreter (Debian's ``python3-seccomp``), or None."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    candidates = [Path(p) for p in sys.path if p] + [Path("/usr/lib/python3/dist-packages")]
    for folder in candidates:
        path = folder / f"seccomp{suffix}"
        if path.is_file():
            return path
    return None


def _package_paths(names: list[str]) -> list[Path]:
    out: list[Path] = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            folder = Path(list(spec.submodule_search_locations)[0]).resolve()
            out.append(folder)
            libs = folder.with_name(folder.name + ".libs")  # manylinux wheels keep shared libraries here
            if libs.is_dir():
                out.append(libs)
        elif spec.origin and spec.origin.endswith(".py"):
            out.append(Path(spec.origin).resolve())
    return out


@dataclass(frozen=True)
class Layout:
    """Host paths a runner needs (computed once per process)."""

    executable: Path
    stdlib: Path
    libpython: Path | None
    libdirs: tuple[Path, ...]
    packages: tuple[Path, ...]
    seccomp: Path | None


@lru_cache
def layout() -> Layout:
    executable = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    libpython = None
    soname = sysconfig.get_config_var("INSTSONAME")
    libdir = sysconfig.get_config_var("LIBDIR")
    if soname and libdir and (Path(libdir) / soname).is_file():
        libpython = (Path(libdir) / soname).resolve()
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    libdirs = tuple(p for p in (Path("/usr/lib") / multiarch, Path("/usr/lib64"), Path("/lib") / multiarch,
                                Path("/lib64")) if p.is_dir() and p.resolve() == p)
    packages = tuple(_package_paths(get_settings().STRATEGY_SANDBOX_PACKAGES))
    return Layout(executable=executable, stdlib=stdlib, libpython=libpython, libdirs=libdirs,
                  packages=packages, seccomp=seccomp_binding())


def _limits() -> dict[str, Any]:
    s = get_settings()
    return {"memory_mb": s.STRATEGY_RUNNER_MEMORY_MB, "cpu_s": s.STRATEGY_RUNNER_CPU_S,
            "file_mb": s.STRATEGY_RUNNER_SCRATCH_MB, "open_files": s.STRATEGY_RUNNER_OPEN_FILES}


def bwrap_command(strategy_file: Path, label: str, module: str) -> list[str]:
    """The ``bwrap`` command line that runs :mod:`tradefleet.sandbox.boot` on ``strategy_file``."""
    lay = layout()
    bwrap = shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin") or "bwrap"
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL",
            "--hostname", "sandbox", "--uid", "65534", "--gid", "65534"]
    for folder in lay.libdirs:
        argv += ["--ro-bind", str(folder), str(folder)]
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64")):
        if Path(link).is_symlink():
            argv += ["--symlink", target, link]
    argv += ["--ro-bind", str(lay.executable), str(lay.executable),
             "--ro-bind", str(lay.stdlib), str(lay.stdlib)]
    site = lay.stdlib / "site-packages"
    if site.is_dir():
        argv += ["--tmpfs", str(site)]
    if lay.libpython is not None:
        argv += ["--ro-bind", str(lay.libpython), str(lay.libpython)]
    for path in lay.packages:
        argv += ["--ro-bind", str(path), f"{LIB}/{path.name}"]
    if lay.seccomp is not None:
        argv += ["--ro-bind", str(lay.seccomp), f"{LIB}/{lay.seccomp.name}"]
    for rel in SDK_FILES:
        argv += ["--ro-bind", str(PACKAGE / rel), f"{LIB}/tradefleet/{rel}"]
    inside = f"{STRATEGY_DIR}/{safe_label(label)}"
    argv += ["--ro-bind", str(strategy_file), inside,
             "--proc", "/proc", "--dev", "/dev",
             "--size", str(get_settings().STRATEGY_RUNNER_SCRATCH_MB * 1024 * 1024), "--tmpfs", SCRATCH,
             "--chdir", SCRATCH]
    for key, value in CHILD_ENV.items():
        argv += ["--setenv", key, value]
    cfg = {"paths": [LIB], "path": inside, "label": safe_label(label), "module": module,
           "seccomp": True, **_limits()}
    argv += ["--", str(lay.executable), "-I", "-S", "-B", f"{LIB}/tradefleet/sandbox/boot.py", json.dumps(cfg)]
    return argv


def unsandboxed_command(strategy_file: Path, label: str, module: str) -> tuple[list[str], dict[str, str]]:
    """A plain runner process for a trusted file when the sandbox is unavailable: same boot, limits and
    (if the binding exists) seccomp filter, an empty environment, but no namespaces."""
    lay = layout()
    roots = [str(PACKAGE.parent)] + sorted({str(p.parent) for p in lay.packages})
    if lay.seccomp is not None:
        roots.append(str(lay.seccomp.parent))
    cfg = {"paths": roots, "path": str(strategy_file), "label": safe_label(label), "module": module,
           "seccomp": lay.seccomp is not None, **_limits()}
    return ([str(lay.executable), "-I", "-S", "-B", str(PACKAGE / "sandbox" / "boot.py"), json.dumps(cfg)],
            {**LAUNCH_ENV, **CHILD_ENV})


_PROBE = """
from tradefleet.strategy import Strategy
class Probe(Strategy):
    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
"""

_status_lock = threading.Lock()
_status: SandboxStatus | None = None


def _probe() -> SandboxStatus:
    settings = get_settings()
    fallback = "unsandboxed" if settings.STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED else "unavailable"
    if settings.STRATEGY_SANDBOX == "off":
        return SandboxStatus(False, fallback, "the sandbox is switched off (STRATEGY_SANDBOX=off)")
    if shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin") is None:
        return SandboxStatus(False, fallback, "bubblewrap is not installed (Debian package bubblewrap)")
    if layout().seccomp is None:
        return SandboxStatus(False, fallback, "libseccomp's Python binding is not installed "
                                              "(Debian package python3-seccomp)")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tradefleet-probe-") as folder:
        path = Path(folder) / "probe.py"
        path.write_text(_PROBE)
        try:
            done = subprocess.run(bwrap_command(path, "probe.py", "tradefleet_probe"), env=LAUNCH_ENV,
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return SandboxStatus(False, fallback, f"bubblewrap could not start: {exc}")
    # The runner answers "ready" on stdout, then exits when stdin (closed) ends.
    if done.returncode != 0 or b"ready" not in done.stdout:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        return SandboxStatus(False, fallback, "bubblewrap cannot create the sandbox here"
                             + (f": {err[-1][:300]}" if err else f" (exit status {done.returncode})"))
    return SandboxStatus(True, "bwrap", None)


def sandbox_status(*, refresh: bool = False) -> SandboxStatus:
    """Probe once per process (start a sandbox on a tiny strategy) and remember the answer."""
    global _status
    with _status_lock:
        if _status is None or refresh:
            _status = _probe()
        return _status
