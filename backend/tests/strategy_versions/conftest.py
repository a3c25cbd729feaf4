"""Fixtures of the strategy-version tests: clients per role, the broker seam of ``strategies.validate``
(recorded; :func:`validate` runs the real task body, in the sandbox), and strategy sources.

The sources are the shipped ``sma_cross.py`` under another class name, so an upload is a real strategy
that passes the check suite; ``revision`` changes its bytes (a new version) without changing its code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlmodel import Session

from tradefleet.config import REPO_ROOT
from tradefleet.db import get_engine
from tradefleet.models import Role, StrategyVersion, VersionStatus
from tradefleet.services import strategy_uploads as uploads_service

UPLOADS = "/api/v1/strategies/uploads"
ADMIN_VERSIONS = "/api/v1/admin/strategy-versions"
SMA_CROSS = (REPO_ROOT / "strategies" / "sma_cross.py").read_text()


def cross_source(class_name: str = "AuthorCross", *, revision: int = 0, fast_low: int = 2,
                 trades: bool = True) -> str:
    """``sma_cross.py`` as class ``class_name`` (catalog name: its snake case); ``revision`` adds a
    comment line (other bytes, same behaviour); ``fast_low`` is the lowest ``fast`` it accepts;
    ``trades=False``: it never enters."""
    text = SMA_CROSS.replace("class SmaCross(Strategy):", f"class {class_name}(Strategy):")
    text = text.replace("IntParam(10, low=2,", f"IntParam(10, low={fast_low},")
    if not trades:
        text = text.replace("enter_long=above & ~was_above & valid,", "enter_long=above & False,")
    assert class_name in text and f"low={fast_low}," in text and ("& False" in text) != trades
    return text + (f"\n# revision {revision}\n" if revision else "")


CHEAT = '''
from tradefleet.strategy import IntParam, Strategy


class PeekAhead(Strategy):
    """Deliberately cheating: buys when the next candle closes higher."""

    timeframe = "1h"
    startup_candles = 1
    window = IntParam(3, low=1, high=10, help="unused")

    def signals(self, candles):
        close = candles["close"]
        nxt = close.shift(-1)
        return candles.assign(enter_long=(nxt > close).fillna(False), exit_long=(nxt < close).fillna(False))
'''


@dataclass
class ValidationQueue:
    """Ids ``upload_version`` enqueued, and whether each row was committed (``validating``) by then."""

    ids: list[uuid.UUID] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)


@pytest.fixture
def validation_queue(monkeypatch) -> ValidationQueue:
    """Replace the broker hop of ``strategies.validate``: record each id, reading the row in a separate
    session (it must already be committed)."""
    q = ValidationQueue()

    def record(version_id: uuid.UUID) -> None:
        with Session(get_engine()) as s:
            row = s.get(StrategyVersion, version_id)
            q.committed.append(row is not None and row.status == VersionStatus.validating)
        q.ids.append(version_id)

    monkeypatch.setattr(uploads_service, "enqueue_validation", record)
    return q


@pytest.fixture
def client_for(db, app, auth_headers) -> Iterator[Callable]:
    """``client_for(user) -> TestClient`` signed in as ``user`` (closed after the test)."""
    from fastapi.testclient import TestClient

    opened = []

    def make(user):
        c = TestClient(app, headers=auth_headers(user))
        c.__enter__()
        c.user = user
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def author_client(make_user, client_for, validation_queue):
    """A client signed in as a fresh author (uploads recorded by ``validation_queue``)."""
    user, _ = make_user(role=Role.author)
    return client_for(user)


@pytest.fixture
def other_author_client(make_user, client_for, validation_queue):
    user, _ = make_user(role=Role.author)
    return client_for(user)


@pytest.fixture
def admin(make_user, client_for):
    user, _ = make_user(role=Role.admin)
    return client_for(user)


@pytest.fixture
def trader(make_user, client_for):
    user, _ = make_user(role=Role.trader)
    return client_for(user)


def upload(client, source: str | bytes, filename: str = "author_cross.py"):
    """``POST /strategies/uploads`` with ``source`` as the multipart field ``file``."""
    data = source.encode() if isinstance(source, str) else source
    return client.post(UPLOADS, files={"file": (filename, data, "text/x-python")})


@pytest.fixture
def validate() -> Callable[[str | uuid.UUID], VersionStatus | None]:
    """``validate(version_id)``: the body of the ``strategies.validate`` task, run here (real sandbox)."""
    from tradefleet.services.strategy_validation import validate_version

    return lambda version_id: validate_version(uuid.UUID(str(version_id)))


@pytest.fixture
def published(author_client, admin, validate) -> Callable[..., dict]:
    """``published(source, filename=..., client=author_client) -> version``: uploaded, validated and
    approved through the API; returns the approved version as the admin route shows it."""

    def publish(source: str, filename: str = "author_cross.py", client=None) -> dict:
        reply = upload(client or author_client, source, filename)
        assert reply.status_code == 202, reply.text
        assert validate(reply.json()["id"]) == VersionStatus.pending_review, \
            (client or author_client).get(f"{UPLOADS}/{reply.json()['id']}").json()["report"]
        approved = admin.post(f"{ADMIN_VERSIONS}/{reply.json()['id']}/approve")
        assert approved.status_code == 200, approved.text
        return approved.json()

    return publish
