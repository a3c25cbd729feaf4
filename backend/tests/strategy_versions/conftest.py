"""Fixtures of the strategy-version tests: clients per role, the broker seam of ``strategies.validate``
(recorded; ``validate`` runs the real task body, in the sandbox), and ``published`` versions. Sources
and request helpers are in ``version_helpers``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlmodel import Session

from version_helpers import ADMIN_VERSIONS, UPLOADS, upload

from tradefleet.db import get_engine
from tradefleet.models import Role, StrategyVersion, VersionStatus
from tradefleet.services import strategy_uploads as uploads_service


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
