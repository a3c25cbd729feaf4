"""Strategy code out of process: sandboxed runners and the parent-side proxies that talk to them.

Parent side (the API, workers, the CLI): :func:`load_strategy` returns a :class:`StrategyProxy`, which
behaves like a :class:`~tradefleet.strategy.base.Strategy` subclass while every call into the author's
code happens in a runner process confined by bubblewrap, seccomp and resource limits
(:mod:`tradefleet.sandbox.launch`); :mod:`~tradefleet.sandbox.registry` loads the files of
``STRATEGIES_DIR`` that way and :mod:`~tradefleet.sandbox.versions` the stored source of a strategy
version. Runner side (inside the sandbox): :mod:`~tradefleet.sandbox.boot`,
:mod:`~tradefleet.sandbox.runner` and :mod:`~tradefleet.sandbox.protocol` only; they import nothing but
the standard library, numpy, pandas and the author SDK.

The names below are imported lazily so that the runner, which has only its own modules bound into the
sandbox, can import this package.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "SandboxUnavailable": "tradefleet.sandbox.errors",
    "StrategyLoadError": "tradefleet.sandbox.errors",
    "RunnerFailure": "tradefleet.sandbox.errors",
    "StrategyManifest": "tradefleet.sandbox.manifest",
    "SandboxStatus": "tradefleet.sandbox.launch",
    "sandbox_status": "tradefleet.sandbox.launch",
    "StrategyProxy": "tradefleet.sandbox.proxy",
    "content_hash": "tradefleet.sandbox.runners",
    "load_strategy": "tradefleet.sandbox.proxy",
    "runner_pool": "tradefleet.sandbox.runners",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
