"""The suite under pytest-xdist (``make test`` runs ``pytest -n <workers> --dist loadgroup``).

Every test stays isolated when workers run side by side:

* PostgreSQL: each database is created under a random name (``conftest._postgresql_database``,
  ``scratch_postgres_database``), SQLite files live in the worker's own temporary directory.
* Redis: worker ``gw<i>`` uses databases ``base - 2 i`` (the tests') and ``base - 2 i - 1`` (the browser
  site's), where ``base`` is the database of ``TEST_REDIS_URL`` (default 15): ``TEST_REDIS_URL`` is
  rewritten in the worker before any test runs. Pub/sub channels are not per database; the suite's are
  per user (``user:<id>``) and Celery prefixes its broadcast channels with the database number.
* Ports: every server binds a port the kernel reported free (``support.common.free_port``).

Scheduling: the browser tests share one session-scoped site (``tests/browser/conftest.py``), so they
form one xdist group and run on one worker. Tests marked ``slow`` are collected first, so they start
early and overlap with the thousands of fast tests instead of trailing at the end. The mark is set
here on every test that starts the platform's real processes (it requests ``e2e_database``, its module
uses ``devstack.Stack``, or it is a browser test); fuzzers and scanners carry it in their module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"


def worker_index() -> int | None:
    """The xdist worker's number (``gw3`` -> 3), ``None`` outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else None


def worker_redis_url(base_url: str, index: int) -> str:
    """``base_url`` moved down ``2 * index`` databases; ``pytest.UsageError`` when that is below 1 (the
    browser site needs the database under it)."""
    url = make_url(base_url)
    db = int(url.database or 0) - 2 * index
    if db < 1:
        raise pytest.UsageError(f"TEST_REDIS_URL {base_url}: worker gw{index} would need Redis database {db}; "
                                "use fewer workers or a higher database")
    return url.set(database=str(db)).render_as_string(hide_password=False)


def pytest_configure(config: pytest.Config) -> None:
    index = worker_index()
    if index is not None:
        from support.common import DEFAULT_REDIS_URL

        os.environ["TEST_REDIS_URL"] = worker_redis_url(os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL,
                                                        index)


def starts_processes(item: pytest.Item) -> bool:
    """Whether ``item`` starts the platform's real processes (see the module docstring)."""
    from tradefleet.devstack import Stack

    return ("e2e_database" in getattr(item, "fixturenames", ())
            or getattr(getattr(item, "module", None), "Stack", None) is Stack)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the group marks into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.xdist_group("browser"))
            item.add_marker(pytest.mark.slow)
        elif starts_processes(item):
            item.add_marker(pytest.mark.slow)
    if config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow ones first
