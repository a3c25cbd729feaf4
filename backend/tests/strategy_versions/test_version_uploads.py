"""``POST /strategies/uploads`` and the author's reads: who may upload, the limits, and that nobody but
the author and admins ever reads a version (each attack tried as an outsider, nothing changed)."""

from __future__ import annotations

import hashlib
import uuid

from conftest import ADMIN_VERSIONS, UPLOADS, cross_source, upload
from sqlalchemy import func
from sqlmodel import select

from tradefleet.models import AuditEvent, StrategyVersion


def versions(session) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(StrategyVersion)).one()


def audit_actions(session) -> list[str]:
    session.expire_all()
    return [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id))]


def field_of(reply) -> str:
    return reply.json()["errors"][0]["field"]


def test_an_author_uploads_a_file_stored_as_validating_and_queued(author_client, validation_queue, session):
    source = cross_source()

    reply = upload(author_client, source)

    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["status"] == "validating" and body["origin"] == "upload"
    assert body["name"] is None and body["version"] is None and body["report"] is None
    assert body["filename"] == "author_cross.py" and body["size_bytes"] == len(source.encode())
    assert body["content_hash"] == hashlib.sha256(source.encode()).hexdigest()
    assert "source" not in body
    assert [str(i) for i in validation_queue.ids] == [body["id"]] and validation_queue.committed == [True]
    row = session.get(StrategyVersion, validation_queue.ids[0])
    assert row.source == source and row.author_id == author_client.user.id
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "strategy.uploaded")).all()
    assert len(events) == 1 and events[0].actor_id == author_client.user.id
    assert events[0].target_type == "strategy_version" and events[0].target_id == body["id"]
    assert events[0].detail["content_hash"] == body["content_hash"]


def test_a_folder_in_the_file_name_is_dropped(author_client):
    reply = upload(author_client, cross_source(), filename="../../etc/author_cross.py")
    assert reply.status_code == 202, reply.text
    assert reply.json()["filename"] == "author_cross.py"


def test_traders_cannot_upload_and_nothing_is_written(trader, validation_queue, session):
    reply = upload(trader, cross_source())

    assert reply.status_code == 403, reply.text
    assert "author" in reply.json()["detail"]
    assert versions(session) == 0 and validation_queue.ids == []
    assert "strategy.uploaded" not in audit_actions(session)


def test_an_admin_may_upload(admin, validation_queue):
    reply = upload(admin, cross_source())
    assert reply.status_code == 202, reply.text
    assert len(validation_queue.ids) == 1


def test_anonymous_uploads_are_401(client, session):
    reply = client.post(UPLOADS, files={"file": ("x.py", b"print(1)\n", "text/x-python")})
    assert reply.status_code == 401 and versions(session) == 0


def test_too_large_is_413_on_file(author_client, settings_env, session, validation_queue):
    settings_env(STRATEGY_UPLOAD_MAX_BYTES=1024)
    source = cross_source()
    assert len(source) > 1024

    reply = upload(author_client, source)

    assert reply.status_code == 413, reply.text
    assert field_of(reply) == "file" and "1,024 bytes" in reply.json()["errors"][0]["message"]
    assert versions(session) == 0 and validation_queue.ids == []
    # Exactly at the limit is accepted.
    settings_env(STRATEGY_UPLOAD_MAX_BYTES=len(source.encode()))
    assert upload(author_client, source).status_code == 202


def test_bad_files_are_422_on_file(author_client, session, validation_queue):
    cases = {
        "not utf-8": (b"# caf\xe9\nX = 1\n", "latin.py", "UTF-8"),
        "empty": (b"", "empty.py", "empty"),
        "blank": (b"  \n\n", "blank.py", "empty"),
        "not .py": (cross_source().encode(), "author_cross.txt", ".py"),
        "NUL bytes": (b"X = 1\n\x00\n", "nul.py", "NUL"),
        "odd name": (cross_source().encode(), "author;cross.py", "file name"),
    }
    for label, (data, filename, words) in cases.items():
        reply = upload(author_client, data, filename)
        assert reply.status_code == 422, (label, reply.text)
        assert field_of(reply) == "file", label
        assert words in reply.json()["errors"][0]["message"], (label, reply.json())
    missing = author_client.post(UPLOADS, files={"other": ("x.py", b"X = 1\n", "text/x-python")})
    assert missing.status_code == 422 and field_of(missing) == "file"
    assert versions(session) == 0 and validation_queue.ids == []


def test_the_same_bytes_twice_is_409_on_file(author_client, other_author_client, session):
    source = cross_source()
    assert upload(author_client, source).status_code == 202

    again = upload(author_client, source, filename="renamed.py")

    assert again.status_code == 409, again.text
    assert field_of(again) == "file" and "already uploaded" in again.json()["detail"]
    assert versions(session) == 1
    # Another author sending the same bytes is a different version (its name is judged by validation).
    assert upload(other_author_client, source).status_code == 202
    assert versions(session) == 2


def test_versions_per_author_are_limited(author_client, other_author_client, settings_env, session):
    settings_env(STRATEGY_UPLOAD_MAX_VERSIONS=2)
    assert upload(author_client, cross_source(revision=1)).status_code == 202
    assert upload(author_client, cross_source(revision=2)).status_code == 202

    third = upload(author_client, cross_source(revision=3))

    assert third.status_code == 409, third.text
    assert field_of(third) == "file" and "limit" in third.json()["detail"]
    assert versions(session) == 2
    assert upload(other_author_client, cross_source(revision=3)).status_code == 202  # per author


def test_authors_list_and_read_only_their_own_versions(author_client, other_author_client, trader, admin):
    mine = [upload(author_client, cross_source(revision=i)).json() for i in (1, 2, 3)]
    theirs = upload(other_author_client, cross_source("TheirCross")).json()

    listed = author_client.get(UPLOADS).json()
    assert listed["count"] == 3
    assert [v["id"] for v in listed["data"]] == [v["id"] for v in reversed(mine)]  # newest first
    page = author_client.get(UPLOADS, params={"limit": 1, "offset": 1}).json()
    assert page["count"] == 3 and [v["id"] for v in page["data"]] == [mine[1]["id"]]
    assert other_author_client.get(UPLOADS).json()["count"] == 1
    assert trader.get(UPLOADS).json() == {"data": [], "count": 0}

    assert author_client.get(f"{UPLOADS}/{mine[0]['id']}").status_code == 200
    source = author_client.get(f"{UPLOADS}/{mine[0]['id']}/source")
    assert source.status_code == 200
    assert source.json() == {"filename": "author_cross.py", "source": cross_source(revision=1)}

    # Another author, a trader: 404 for the version and its source, exactly as for no version at all.
    for outsider in (other_author_client, trader):
        for path in (f"{UPLOADS}/{mine[0]['id']}", f"{UPLOADS}/{mine[0]['id']}/source"):
            reply = outsider.get(path)
            assert reply.status_code == 404, (path, reply.text)
            assert reply.json() == {"detail": "strategy version not found"}
            assert "class AuthorCross" not in reply.text
    assert author_client.get(f"{UPLOADS}/{theirs['id']}/source").status_code == 404
    # Admins read any source, and only through it or the review routes.
    assert admin.get(f"{UPLOADS}/{theirs['id']}/source").json()["source"] == cross_source("TheirCross")
    assert admin.get(f"{UPLOADS}/{theirs['id']}").status_code == 404  # "uploads/{id}" is the caller's own


def test_traders_and_authors_cannot_use_the_review_routes(author_client, trader, session):
    version = upload(author_client, cross_source()).json()
    for caller in (trader, author_client):
        assert caller.get(ADMIN_VERSIONS).status_code == 403
        assert caller.get(f"{ADMIN_VERSIONS}/{version['id']}").status_code == 403
        assert caller.post(f"{ADMIN_VERSIONS}/{version['id']}/approve").status_code == 403
        assert caller.post(f"{ADMIN_VERSIONS}/{version['id']}/reject", json={"reason": "x"}).status_code == 403
    session.expire_all()
    assert session.get(StrategyVersion, uuid.UUID(version["id"])).status.value == "validating"
    assert not [a for a in audit_actions(session) if a.startswith("strategy.") and a != "strategy.uploaded"]


def test_the_admin_review_list_and_detail(author_client, other_author_client, admin):
    first = upload(author_client, cross_source()).json()
    upload(other_author_client, cross_source("TheirCross"))

    listed = admin.get(ADMIN_VERSIONS).json()
    assert listed["count"] == 2
    emails = {v["id"]: v["author_email"] for v in listed["data"]}
    assert emails[first["id"]] == author_client.user.email
    assert all("source" not in v for v in listed["data"])
    assert admin.get(ADMIN_VERSIONS, params={"status": "pending_review"}).json() == {"data": [], "count": 0}
    assert admin.get(ADMIN_VERSIONS, params={"status": "validating", "limit": 1}).json()["count"] == 2
    bad = admin.get(ADMIN_VERSIONS, params={"status": "bogus"})
    assert bad.status_code == 422 and field_of(bad) == "query.status"

    detail = admin.get(f"{ADMIN_VERSIONS}/{first['id']}").json()
    assert detail["source"] == cross_source() and detail["author_email"] == author_client.user.email
    assert admin.get(f"{ADMIN_VERSIONS}/00000000-0000-0000-0000-000000000000").status_code == 404


def test_only_pending_versions_are_reviewed_and_a_reason_is_required(author_client, admin, session):
    version = upload(author_client, cross_source()).json()

    approve = admin.post(f"{ADMIN_VERSIONS}/{version['id']}/approve")
    reject = admin.post(f"{ADMIN_VERSIONS}/{version['id']}/reject", json={"reason": "no"})

    assert approve.status_code == 409 and "validating" in approve.json()["detail"]
    assert reject.status_code == 409
    for body in ({}, {"reason": ""}, {"reason": "x" * 1001}, {"reason": "   "}):
        reply = admin.post(f"{ADMIN_VERSIONS}/{version['id']}/reject", json=body)
        assert reply.status_code in (409, 422), (body, reply.text)
        if body != {"reason": "   "}:
            assert reply.status_code == 422 and field_of(reply) == "reason", body
    session.expire_all()
    row = session.get(StrategyVersion, uuid.UUID(version["id"]))
    assert row.status.value == "validating" and row.reviewed_by is None
    assert not {"strategy.approved", "strategy.rejected"} & set(audit_actions(session))


def test_display_name_is_set_through_users_me(user_client):
    assert user_client.get("/api/v1/users/me").json()["display_name"] is None
    reply = user_client.patch("/api/v1/users/me", json={"display_name": "  Ada   Quant "})
    assert reply.status_code == 200, reply.text
    assert reply.json()["display_name"] == "Ada Quant"
    assert user_client.get("/api/v1/users/me").json()["display_name"] == "Ada Quant"
    for bad in ("", "x" * 81, "bell\x07"):
        wrong = user_client.patch("/api/v1/users/me", json={"display_name": bad})
        assert wrong.status_code == 422 and field_of(wrong) == "display_name", bad
    assert user_client.patch("/api/v1/users/me", json={"display_name": None}).json()["display_name"] is None
