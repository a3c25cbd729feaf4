"""Discovery of the strategies in ``STRATEGIES_DIR``.

Each ``*.py`` file (not starting with ``_``) is imported with ``importlib``; the :class:`Strategy`
subclasses defined in that module are kept. A file that fails (syntax error, import error, missing
``signals``, invalid parameter default, duplicate name) is recorded with its error instead of
crashing the process (the resolver pattern of freqtrade's ``IResolver``).

:meth:`StrategyRegistry.refresh` re-imports only files whose modification time or size changed, so
new and edited files are picked up without a restart and no file is executed twice per change.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import threading
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tradefleet.config import get_settings
from tradefleet.strategy.base import Strategy

log = logging.getLogger(__name__)

MODULE_PREFIX = "tradefleet_strategies"


class UnknownStrategy(KeyError):
    """No loadable strategy has that name."""


@dataclass
class _FileEntry:
    stamp: tuple[int, int]
    classes: list[type[Strategy]] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class BrokenFile:
    """A strategy file that could not be loaded, and why."""

    path: str
    error: str


class StrategyRegistry:
    """The strategies of one folder. Thread-safe; cheap to :meth:`refresh` (one ``stat`` per file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._files: dict[Path, _FileEntry] = {}
        self._by_name: dict[str, type[Strategy]] = {}
        self._duplicates: dict[Path, str] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self.imports = 0
        """How many times a file was executed (tests check that unchanged files are not)."""
        # Modules are named per folder, so two registries (two folders) never share sys.modules entries.
        self._prefix = f"{MODULE_PREFIX}_{hashlib.sha1(str(self.folder.resolve()).encode(), usedforsecurity=False).hexdigest()[:8]}"

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
            for path in paths:
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                stamp = (st.st_mtime_ns, st.st_size)
                entry = self._files.get(path)
                if entry is None or entry.stamp != stamp:
                    self._files[path] = self._load(path, stamp)
                    changed = True
            for gone in set(self._files) - set(paths):
                del self._files[gone]
                sys.modules.pop(f"{self._prefix}.{gone.stem}", None)
                changed = True
            if changed or not self._by_name and self._files:
                self._index()

    def _load(self, path: Path, stamp: tuple[int, int]) -> _FileEntry:
        module_name = f"{self._prefix}.{path.stem}"
        self.imports += 1
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path.name}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            classes = [
                obj
                for obj in vars(module).values()
                if isinstance(obj, type)
                and issubclass(obj, Strategy)
                and obj is not Strategy
                and obj.__module__ == module_name
            ]
            if not classes:
                raise TypeError(f"{path.name} defines no Strategy subclass")
            for klass in classes:
                klass.check_definition()
            return _FileEntry(stamp=stamp, classes=classes)
        except BaseException as exc:  # noqa: BLE001 - a broken plugin must never take the process down
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not isinstance(exc, SystemExit):
                raise
            sys.modules.pop(module_name, None)
            # Name the file, not the server's path to it (the message reaches the admin page).
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            error = error.replace(str(path), path.name)
            log.warning("strategy file %s is broken: %s", path.name, error)
            return _FileEntry(stamp=stamp, error=error)

    def _index(self) -> None:
        by_name: dict[str, type[Strategy]] = {}
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
    def get(self, name: str) -> type[Strategy]:
        """The strategy class named ``name``; raises :class:`UnknownStrategy`."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownStrategy(name) from None

    def all(self) -> list[type[Strategy]]:
        """Every loadable strategy, sorted by name."""
        return [self._by_name[k] for k in sorted(self._by_name)]

    def broken(self) -> list[BrokenFile]:
        """Files that could not be loaded, with their error."""
        out = [BrokenFile(p.name, e.error) for p, e in sorted(self._files.items()) if e.error]
        out += [BrokenFile(p.name, msg) for p, msg in sorted(self._duplicates.items())]
        return out


@lru_cache
def _registry_for(folder: str) -> StrategyRegistry:
    return StrategyRegistry(Path(folder))


def get_registry() -> StrategyRegistry:
    """The registry of ``Settings.STRATEGIES_DIR``, refreshed (changed files re-imported)."""
    registry = _registry_for(str(get_settings().STRATEGIES_DIR))
    registry.refresh()
    return registry
