"""Discovery of the strategies in ``STRATEGIES_DIR``.

Each ``*.py`` file (not starting with ``_``) is loaded by a sandboxed runner
(:func:`tradefleet.sandbox.load_strategy`): this process never imports it. What comes back is a
:class:`~tradefleet.sandbox.StrategyProxy` per file, built from the manifest the runner produced; a file
that fails (syntax error, import error, no or several Strategy subclasses, invalid parameter default,
duplicate name, or no sandbox to run it in) is recorded with its error instead (the resolver pattern of
freqtrade's ``IResolver``).

:meth:`StrategyRegistry.refresh` loads only files whose modification time or size changed, so new and
edited files are picked up without a restart and no file is loaded twice per change.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from tradefleet.config import get_settings

if TYPE_CHECKING:
    from tradefleet.sandbox import StrategyProxy

log = logging.getLogger(__name__)


class UnknownStrategy(KeyError):
    """No loadable strategy has that name."""


@dataclass
class _FileEntry:
    stamp: tuple[int, int]
    source: bytes = b""
    content_hash: str = ""
    classes: list["StrategyProxy"] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class BrokenFile:
    """A strategy file that could not be loaded, and why."""

    path: str
    error: str


@dataclass(frozen=True)
class RegistryEntry:
    """One file of the folder: its bytes, their SHA-256, and the strategy it defines or its error."""

    filename: str
    content_hash: str
    source: bytes
    strategy: "StrategyProxy | None"
    error: str | None


class StrategyRegistry:
    """The strategies of one folder. Thread-safe; cheap to :meth:`refresh` (one ``stat`` per file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._files: dict[Path, _FileEntry] = {}
        self._by_name: dict[str, StrategyProxy] = {}
        self._duplicates: dict[Path, str] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.imports = 0
        """How many times a file was loaded (tests check that unchanged files are not)."""

    def refresh(self) -> None:
        """Import new and changed files, forget deleted ones.

        A strategy file that itself asks for the registry while being imported gets it as it is
        (no nested refresh: that would deadlock or import the file again)."""
        if getattr(self._local, "refreshing", False):
            return
        with self._lock:
            self._local.refreshing = True
            try:
                self._refresh()
            finally:
                self._local.refreshing = False

    def _refresh(self) -> None:
        if True:
            paths = sorted(p for p in self.folder.glob("*.py") if not p.name.startswith("_"))
            changed = False
            due: list[tuple[Path, tuple[int, int]]] = []
            for path in paths:
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                stamp = (st.st_mtime_ns, st.st_size)
                entry = self._files.get(path)
                if entry is None or entry.stamp != stamp:
                    due.append((path, stamp))
            # Each load starts a runner process and waits for it to import its libraries: in parallel.
            if len(due) > 1:
                with ThreadPoolExecutor(max_workers=min(8, len(due)), thread_name_prefix="strategy-load") as pool:
                    loaded = list(pool.map(lambda item: self._load(*item), due))
            else:
                loaded = [self._load(*item) for item in due]
            for (path, _), entry in zip(due, loaded):
                self._files[path] = entry
                changed = True
            for gone in set(self._files) - set(paths):
                del self._files[gone]
                changed = True
            if changed or not self._by_name and self._files:
                self._index()

    def _load(self, path: Path, stamp: tuple[int, int]) -> _FileEntry:
        from tradefleet.sandbox import SandboxUnavailable, StrategyLoadError, content_hash, load_strategy

        with self._count_lock:
            self.imports += 1
        try:
            source = path.read_bytes()
        except OSError as exc:
            return _FileEntry(stamp=stamp, error=f"{path.name}: cannot be read ({exc.strerror})")
        entry = _FileEntry(stamp=stamp, source=source, content_hash=content_hash(source))
        try:
            entry.classes = [load_strategy(source, label=path.name, trusted=True)]
        except (StrategyLoadError, SandboxUnavailable) as exc:
            entry.error = str(exc)
            log.warning("strategy file %s is broken: %s", path.name, entry.error)
        return entry

    def _index(self) -> None:
        by_name: dict[str, StrategyProxy] = {}
        defined_in: dict[str, Path] = {}
        duplicates: dict[Path, str] = {}
        for path, entry in sorted(self._files.items()):
            for klass in entry.classes:
                if klass.name in by_name:
                    duplicates[path] = (
                        f"duplicate strategy name {klass.name!r}: already defined by "
                        f"{by_name[klass.name].__name__} in {defined_in[klass.name].name}"
                    )
                    continue
                by_name[klass.name] = klass
                defined_in[klass.name] = path
        self._by_name, self._duplicates = by_name, duplicates

    # ------------------------------------------------------------------ queries
    def get(self, name: str) -> "StrategyProxy":
        """The strategy named ``name``; raises :class:`UnknownStrategy`."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownStrategy(name) from None

    def all(self) -> list["StrategyProxy"]:
        """Every loadable strategy, sorted by name."""
        return [self._by_name[k] for k in sorted(self._by_name)]

    def broken(self) -> list[BrokenFile]:
        """Files that could not be loaded, with their error."""
        out = [BrokenFile(p.name, e.error) for p, e in sorted(self._files.items()) if e.error]
        out += [BrokenFile(p.name, msg) for p, msg in sorted(self._duplicates.items())]
        return out

    def entries(self) -> list[RegistryEntry]:
        """Every file of the folder with its source, hash and strategy (None when broken or a duplicate)."""
        out = []
        for path, e in sorted(self._files.items()):
            error = e.error or self._duplicates.get(path)
            strategy = e.classes[0] if e.classes and path not in self._duplicates else None
            out.append(RegistryEntry(path.name, e.content_hash, e.source, strategy, error))
        return out


@lru_cache
def _registry_for(folder: str) -> StrategyRegistry:
    return StrategyRegistry(Path(folder))


def get_registry() -> StrategyRegistry:
    """The registry of ``Settings.STRATEGIES_DIR``, refreshed (changed files re-imported)."""
    registry = _registry_for(str(get_settings().STRATEGIES_DIR))
    registry.refresh()
    return registry
