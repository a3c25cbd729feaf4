"""``/api/v1/exchange-accounts``: add, list, read, update, delete, check; owner-scoped; keys never in
a reply; the API process never decrypts; a rejected request writes nothing."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func
from sqlmodel import select

from tradefleet.models import ExchangeAccount, KeyCheckStatus, Run, RunMode, RunStatus
from tradefleet.security import vault

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PUBLIC_FIELDS = {"id", "exchange", "label", "sandbox", "fingerprint", "check_status", "check_message",
                 "checked_at", "created_at", "updated_at"}


def _body(**overrides):
    body = {"exchange": "binance", "label": "main", "api_key": API_KEY, "secret": SECRET, "sandbox": False}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _count(session) -> int:
    return session.exec(select(func.count()).select_from(ExchangeAccount)).one()


def test_add_stores_ciphertext_and_returns_only_a_fingerprint(user_client, session, check_queue):
    reply = user_client.post("/api/v1/exchange-accounts", json=_body(label="  my binance  "))
    assert reply.status_code == 201, reply.text
    data = reply.json()
    assert set(data) == PUBLIC_FIELDS
    assert data["label"] == "my binance" and data["fingerprint"] == "vmPU…Eh8A"
    assert data["check_status"] == "pending" and data["checked_at"] is None
    assert API_KEY not in reply.text and SECRET not in reply.text
    # Committed before the check was enqueued, and enqueued exactly once.
    assert check_queue.ids == [uuid.UUID(data["id"])] and check_queue.committed == [True]
    row = session.get(ExchangeAccount, uuid.UUID(data["id"]))
    assert row.owner_id == user_client.user.id
    for column in ("api_key_enc", "secret_enc"):
        assert API_KEY not in getattr(row, column) and SECRET not in getattr(row, column)
    assert row.password_enc is None and row.uid_enc is None
    # The API process never unlocked decryption to do any of this.
    assert not vault.decryption_unlocked()
    with vault.unlocked():
        creds = vault.decrypt_credentials(row)
    assert (creds.api_key, creds.secret) == (API_KEY, SECRET)

    listed = user_client.get("/api/v1/exchange-accounts").json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == data["id"]
    assert set(listed["data"][0]) == PUBLIC_FIELDS
    assert user_client.get(f"/api/v1/exchange-accounts/{data['id']}").json() == data


@pytest.mark.parametrize(("body", "field"), [
    (_body(exchange="kraken"), "exchange"),               # not enabled
    (_body(exchange=""), "exchange"),
    (_body(api_key=None), "api_key"),
    (_body(secret=None), "secret"),
    (_body(secret=""), "secret"),
    (_body(secret="   "), "secret"),
    (_body(api_key=" " + API_KEY), "api_key"),
    (_body(label=""), "label"),
    (_body(label="x" * 101), "label"),
    (_body(sandbox="maybe"), "sandbox"),
    (_body(api_key=12345), "api_key"),
    (_body(secret="s" * 513), "secret"),
])
def test_bad_bodies_are_422_naming_the_field_and_write_nothing(user_client, session, check_queue, body, field):
    reply = user_client.post("/api/v1/exchange-accounts", json=body)
    assert reply.status_code == 422, reply.text
    assert field in [e["field"] for e in reply.json()["errors"]]
    assert API_KEY not in reply.text and SECRET not in reply.text and "s" * 100 not in reply.text
    assert _count(session) == 0 and check_queue.ids == []


def test_an_exchange_ccxt_does_not_know_and_a_missing_passphrase(user_client, session, check_queue, settings_env):
    settings_env(EXCHANGES_ENABLED="binance,notanexchange,okx")
    reply = user_client.post("/api/v1/exchange-accounts", json=_body(exchange="notanexchange"))
    assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "exchange"
    reply = user_client.post("/api/v1/exchange-accounts", json=_body(exchange="okx"))  # OKX needs a passphrase
    assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "password"
    assert _count(session) == 0 and check_queue.ids == []
    reply = user_client.post("/api/v1/exchange-accounts", json=_body(exchange="okx", password="passphrase-1"))
    assert reply.status_code == 201, reply.text


def test_malformed_json_holding_a_secret_is_not_echoed(user_client, session):
    raw = '{"exchange": "binance", "label": "x", "api_key": "%s", "secret": "%s"' % (API_KEY, SECRET)  # unclosed
    reply = user_client.post("/api/v1/exchange-accounts", content=raw, headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "body"
    assert API_KEY not in reply.text and SECRET not in reply.text
    assert _count(session) == 0


def test_update_label_keys_and_sandbox(user_client, session, check_queue):
    created = user_client.post("/api/v1/exchange-accounts", json=_body()).json()
    account_id = uuid.UUID(created["id"])
    row = session.get(ExchangeAccount, account_id)
    row.check_status, row.check_message = KeyCheckStatus.valid, "ok"
    session.commit()
    old_tokens = (row.api_key_enc, row.secret_enc)

    # A label alone: no new check, keys untouched.
    reply = user_client.patch(f"/api/v1/exchange-accounts/{account_id}", json={"label": "renamed"})
    assert reply.status_code == 200 and reply.json()["label"] == "renamed"
    assert reply.json()["check_status"] == "valid" and check_queue.ids == [account_id]

    # A new secret: re-encrypted, pending, checked again, the key version moves on.
    new_secret = "new-" + SECRET[4:]
    reply = user_client.patch(f"/api/v1/exchange-accounts/{account_id}", json={"secret": new_secret})
    assert reply.status_code == 200 and reply.json()["check_status"] == "pending"
    assert new_secret not in reply.text and reply.json()["fingerprint"] == "vmPU…Eh8A"
    assert check_queue.ids == [account_id, account_id] and all(check_queue.committed)
    session.expire_all()
    row = session.get(ExchangeAccount, account_id)
    assert row.api_key_enc == old_tokens[0] and row.secret_enc != old_tokens[1] and row.keys_version == 2
    with vault.unlocked():
        assert vault.decrypt_credentials(row).secret == new_secret

    # A new API key changes the fingerprint; the sandbox flag alone is checked again too.
    reply = user_client.patch(f"/api/v1/exchange-accounts/{account_id}", json={"api_key": "A" * 20 + "tail"})
    assert reply.json()["fingerprint"] == "AAAA…tail"
    reply = user_client.patch(f"/api/v1/exchange-accounts/{account_id}", json={"sandbox": True})
    assert reply.json()["sandbox"] is True and len(check_queue.ids) == 4

    # Invalid updates change nothing.
    for body, field in (({"secret": ""}, "secret"), ({"label": ""}, "label"), ({"sandbox": "x"}, "sandbox")):
        reply = user_client.patch(f"/api/v1/exchange-accounts/{account_id}", json=body)
        assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == field
    session.expire_all()
    assert session.get(ExchangeAccount, account_id).keys_version == 4 and len(check_queue.ids) == 4


def test_check_sets_pending_and_enqueues(user_client, session, check_queue):
    account_id = user_client.post("/api/v1/exchange-accounts", json=_body()).json()["id"]
    row = session.get(ExchangeAccount, uuid.UUID(account_id))
    row.check_status = KeyCheckStatus.invalid
    session.commit()
    reply = user_client.post(f"/api/v1/exchange-accounts/{account_id}/check")
    assert reply.status_code == 202 and reply.json()["check_status"] == "pending"
    assert len(check_queue.ids) == 2 and all(check_queue.committed)


def test_another_users_account_is_404_everywhere(user_client, app, make_user, auth_headers, session, check_queue):
    from fastapi.testclient import TestClient

    account_id = user_client.post("/api/v1/exchange-accounts", json=_body()).json()["id"]
    other, _ = make_user()
    with TestClient(app, headers=auth_headers(other)) as c:
        assert c.get("/api/v1/exchange-accounts").json() == {"data": [], "count": 0}
        path = f"/api/v1/exchange-accounts/{account_id}"
        for reply in (c.get(path), c.patch(path, json={"label": "mine"}), c.delete(path), c.post(f"{path}/check")):
            assert reply.status_code == 404 and reply.json()["detail"] == "exchange account not found"
    assert _count(session) == 1 and len(check_queue.ids) == 1
    assert user_client.get(f"/api/v1/exchange-accounts/{uuid.uuid4()}").status_code == 404


def test_anonymous_is_401(client):
    assert client.get("/api/v1/exchange-accounts").status_code == 401
    assert client.post("/api/v1/exchange-accounts", json=_body()).status_code == 401


def _live_run(session, owner_id, account_id, status: RunStatus) -> Run:
    run = Run(owner_id=owner_id, strategy="sma_cross", params={}, exchange="binance", symbol="BTC/USDT",
              timeframe="1m", mode=RunMode.live, stake=100.0, cash=100.0, status=status,
              exchange_account_id=account_id)
    session.add(run)
    session.commit()
    return run


def test_delete_is_refused_while_a_live_run_uses_the_keys(user_client, session, check_queue):
    account_id = uuid.UUID(user_client.post("/api/v1/exchange-accounts", json=_body()).json()["id"])
    owner_id = user_client.user.id
    running = _live_run(session, owner_id, account_id, RunStatus.running)
    paused = _live_run(session, owner_id, account_id, RunStatus.paused)
    stopped = _live_run(session, owner_id, account_id, RunStatus.stopped)

    reply = user_client.delete(f"/api/v1/exchange-accounts/{account_id}")
    assert reply.status_code == 409
    assert "used by 2 live run(s) that are not stopped" in reply.json()["detail"]
    assert str(running.id) in reply.json()["detail"] and str(paused.id) in reply.json()["detail"]
    assert _count(session) == 1

    for run in (running, paused):
        assert user_client.post(f"/api/v1/runs/{run.id}/stop").status_code == 200
    assert user_client.delete(f"/api/v1/exchange-accounts/{account_id}").status_code == 204
    assert _count(session) == 0
    session.expire_all()
    # Stopped runs keep their history; none points at the deleted keys.
    assert {session.get(Run, r.id).exchange_account_id for r in (running, paused, stopped)} == {None}
    assert user_client.get(f"/api/v1/exchange-accounts/{account_id}").status_code == 404


def test_a_broker_outage_marks_the_check_error_but_keeps_the_keys(user_client, session, monkeypatch):
    from tradefleet.services import exchange_accounts as service

    def broken(_account_id):
        raise ConnectionError("broker down")

    monkeypatch.setattr(service, "enqueue_key_check", broken)
    reply = user_client.post("/api/v1/exchange-accounts", json=_body())
    assert reply.status_code == 201
    assert reply.json()["check_status"] == "error" and "could not be queued" in reply.json()["check_message"]
    assert _count(session) == 1


@pytest.mark.parametrize(("field", "value"), [
    ("api_key", "ключ" + "k" * 36),          # not Latin-1: ccxt could never send it in a header
    ("secret", "s" * 30 + "é" + "s" * 9),     # Latin-1, still not what any exchange issues
    ("api_key", "k" * 20 + "\x00" + "k" * 19),
    ("secret", "s" * 20 + "\t" + "s" * 19),
    ("api_key", "k" * 20 + "\u202e" + "k" * 19),  # a bidi override hiding part of the key on screen
    ("password", "pass\u2028word"),
])
def test_keys_outside_printable_ascii_are_refused_by_name(user_client, session, check_queue, field, value):
    body = _body(**{field: value})
    reply = user_client.post("/api/v1/exchange-accounts", json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["errors"][0]["field"] == field
    # NUL is refused by the input guard before the key check; both name the field.
    assert any(text in reply.json()["errors"][0]["message"] for text in ("printable ASCII", "NUL character"))
    assert value not in reply.text
    assert _count(session) == 0 and check_queue.ids == []
    # The same on a change of keys: the stored ones stay, no check is queued.
    account_id = user_client.post("/api/v1/exchange-accounts", json=_body()).json()["id"]
    before = session.get(ExchangeAccount, uuid.UUID(account_id)).secret_enc
    reply = user_client.patch(f"/api/v1/exchange-accounts/{account_id}", json={field: value})
    assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == field
    session.expire_all()
    row = session.get(ExchangeAccount, uuid.UUID(account_id))
    assert row.secret_enc == before and row.keys_version == 1 and len(check_queue.ids) == 1
