"""The key vault: encryption bound to the row and field, decryption only where unlocked, masked
credentials, fingerprints, settings that never echo a key, and `tradefleet keys rotate`."""

from __future__ import annotations

import logging
import pickle
import uuid

import pytest
from cryptography.fernet import Fernet, InvalidToken
from pydantic import ValidationError
from sqlmodel import select
from typer.testing import CliRunner

from tradefleet.config import Settings
from tradefleet.models import ExchangeAccount, ExchangeAccountCreate
from tradefleet.security import vault
from tradefleet.security.vault import Credentials, VaultError, VaultLocked


def test_a_token_decrypts_only_for_its_account_and_field(unlocked_vault):
    a, b = uuid.uuid4(), uuid.uuid4()
    token = vault.encrypt_field("s3cr3t-value", account_id=a, field="secret")
    assert "s3cr3t-value" not in token
    assert vault.decrypt_field(token, account_id=a, field="secret") == "s3cr3t-value"
    with pytest.raises(VaultError, match="another account or field"):
        vault.decrypt_field(token, account_id=b, field="secret")  # copied into another row
    with pytest.raises(VaultError, match="another account or field"):
        vault.decrypt_field(token, account_id=a, field="api_key")  # copied into another column
    with pytest.raises(VaultError, match="opens with none"):
        vault.decrypt_field(Fernet(Fernet.generate_key()).encrypt(b"{}").decode(), account_id=a, field="secret")


def test_decryption_is_refused_unless_the_process_unlocked_it():
    assert not vault.decryption_unlocked()  # the test process is an API-like process by default
    account_id = uuid.uuid4()
    token = vault.encrypt_field("x" * 20, account_id=account_id, field="api_key")
    with pytest.raises(VaultLocked):
        vault.decrypt_field(token, account_id=account_id, field="api_key")
    with vault.unlocked():
        assert vault.decrypt_field(token, account_id=account_id, field="api_key") == "x" * 20
    assert not vault.decryption_unlocked()


def test_credentials_never_print(caplog):
    creds = Credentials(api_key="AKIA-canary-key-123456", secret="canary-secret-abcdef", password="pw-canary")
    shown = [repr(creds), str(creds), f"{creds}", f"{creds!r}", "%s" % (creds,)]
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("using %s %r", creds, creds)
    shown.append(caplog.text)
    for text in shown:
        assert "canary" not in text and "***" in text
    assert creds.as_ccxt() == {"apiKey": "AKIA-canary-key-123456", "secret": "canary-secret-abcdef",
                               "password": "pw-canary"}
    with pytest.raises(TypeError):
        pickle.dumps(creds)
    assert creds.redact("bad key AKIA-canary-key-123456 / canary-secret-abcdef") == "bad key *** / ***"


def test_fingerprint_shows_too_little_to_use():
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    assert vault.fingerprint(key) == "vmPU…Eh8A"
    short = vault.fingerprint("short-key")
    assert short.startswith("sha256:") and "short" not in short and len(short) == 15


def test_a_malformed_key_setting_is_refused_without_echoing_it(settings_env, monkeypatch):
    monkeypatch.setenv("API_ENCRYPTION_KEYS", f"{Fernet.generate_key().decode()},not-a-key-but-secret-ish")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "key 2 is not a Fernet key" in str(info.value)
    assert "secret-ish" not in str(info.value)


def test_production_without_keys_cannot_use_the_vault(settings_env, monkeypatch):
    # First line: production settings without keys do not load at all (config.production_problems).
    with pytest.raises(ValidationError, match="API_ENCRYPTION_KEYS: missing"):
        settings_env(API_ENCRYPTION_KEYS=None, ENVIRONMENT="production", JWT_SECRET_KEY="prod-" + "x" * 40)
    # Second line: settings built without validation still never get a development key in production.
    unchecked = Settings.model_construct(ENVIRONMENT="production", API_ENCRYPTION_KEYS=[])
    monkeypatch.setattr(vault, "get_settings", lambda: unchecked)
    with pytest.raises(VaultError, match="API_ENCRYPTION_KEYS is not set"):
        vault.encrypt_field("k", account_id=uuid.uuid4(), field="api_key")


def test_the_development_key_is_made_once_and_private(tmp_path):
    path = tmp_path / "var" / "dev.key"
    first = vault._dev_key(path)
    assert vault._dev_key(path) == first
    Fernet(first)  # a valid key
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["dev.key"]


# --- rotation --------------------------------------------------------------------------------------


def _add(session, owner, n: int) -> dict[uuid.UUID, dict[str, str]]:
    """``n`` accounts stored through the service; returns their plaintext per id."""
    from tradefleet.services import exchange_accounts as service

    plain = {}
    for i in range(n):
        values = {"api_key": f"rotation-key-{i}-{uuid.uuid4().hex}", "secret": f"rotation-secret-{i}-{uuid.uuid4().hex}"}
        if i % 2:
            values["password"] = f"pass-{i}-{uuid.uuid4().hex[:8]}"
        account = service.create_account(session=session, owner=owner, account_in=ExchangeAccountCreate(
            exchange="binance", label=f"acct {i}", **values))
        plain[account.id] = values
    return plain


def _decrypt_all(session) -> dict[uuid.UUID, dict[str, str]]:
    session.expire_all()
    out = {}
    for account in session.exec(select(ExchangeAccount)).all():
        creds = vault.decrypt_credentials(account)
        out[account.id] = {k: v for k, v in (("api_key", creds.api_key), ("secret", creds.secret),
                                             ("password", creds.password)) if v}
    return out


def test_rotate_re_encrypts_every_row_under_the_newest_key(session, make_user, settings_env, check_queue,
                                                           unlocked_vault):
    from tradefleet.cli import app

    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings_env(API_ENCRYPTION_KEYS=k1)
    owner, _ = make_user()
    plain = _add(session, owner, 5)
    assert len(check_queue.ids) == 5 and all(check_queue.committed)
    before = {a.id: a.secret_enc for a in session.exec(select(ExchangeAccount)).all()}

    # A user's two-factor secret is encrypted with the same keys: it must rotate too.
    from tradefleet.security import crypto

    owner.totp_secret = crypto.encrypt("JBSWY3DPEHPK3PXP")
    session.add(owner)
    session.commit()

    settings_env(API_ENCRYPTION_KEYS=f"{k2},{k1}")
    result = CliRunner().invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 12 tokens of 5 exchange accounts under the newest of 2 keys" in result.output
    assert "re-encrypted 1 two-factor secrets" in result.output

    settings_env(API_ENCRYPTION_KEYS=k2)  # the old key is gone
    assert _decrypt_all(session) == plain
    session.refresh(owner)
    assert crypto.decrypt(owner.totp_secret) == "JBSWY3DPEHPK3PXP"
    for account in session.exec(select(ExchangeAccount)).all():
        assert account.secret_enc != before[account.id]
        with pytest.raises(InvalidToken):
            Fernet(k1).decrypt(account.secret_enc.encode())
        Fernet(k2).decrypt(account.api_key_enc.encode())
    # The old tokens no longer open with the remaining key.
    with pytest.raises(VaultError):
        vault.decrypt_field(next(iter(before.values())), account_id=next(iter(before)), field="secret")


def test_rotate_reports_rows_no_key_opens_and_leaves_them(session, make_user, settings_env, check_queue,
                                                          unlocked_vault):
    from tradefleet.cli import app

    k1, k2, lost = (Fernet.generate_key().decode() for _ in range(3))
    owner, _ = make_user()
    settings_env(API_ENCRYPTION_KEYS=k1)
    kept = _add(session, owner, 2)
    settings_env(API_ENCRYPTION_KEYS=lost)
    orphan = _add(session, owner, 1)
    orphan_id = next(iter(orphan))
    orphan_token = session.get(ExchangeAccount, orphan_id).secret_enc

    settings_env(API_ENCRYPTION_KEYS=f"{k2},{k1}")
    result = CliRunner().invoke(app, ["keys", "rotate"])
    assert result.exit_code == 1
    assert "re-encrypted 5 tokens of 2 exchange accounts" in result.output
    assert str(orphan_id) in result.output and "none of API_ENCRYPTION_KEYS opens" in result.output
    session.expire_all()
    assert session.get(ExchangeAccount, orphan_id).secret_enc == orphan_token
    settings_env(API_ENCRYPTION_KEYS=k2)
    rows = session.exec(select(ExchangeAccount).where(ExchangeAccount.id != orphan_id)).all()
    assert {a.id: vault.decrypt_credentials(a).secret for a in rows} == {i: v["secret"] for i, v in kept.items()}


def test_a_process_that_decrypted_a_key_scrubs_it_from_every_log_record(caplog):
    account_id = uuid.uuid4()
    value = f"leaky-secret-{uuid.uuid4().hex}"
    token = vault.encrypt_field(value, account_id=account_id, field="secret")
    with vault.unlocked():
        assert vault.decrypt_field(token, account_id=account_id, field="secret") == value
    library = logging.getLogger("some.http.library")
    with caplog.at_level(logging.DEBUG):
        library.debug("GET /api, Request: %s", {"X-SECRET": value})
        library.warning(f"formatted into the message: {value}")
        try:
            raise ValueError(f"the exchange said: bad key {value}")
        except ValueError:
            library.exception("request failed")
        library.info("nothing secret here: %d", 42)
    text = caplog.text
    assert value not in text and text.count("***") >= 3
    assert "nothing secret here: 42" in text and "ValueError: the exchange said: bad key ***" in text


def test_ccxt_never_logs_its_request_headers(caplog):
    import tradefleet.market.exchange  # noqa: F401  (pins the level)

    with caplog.at_level(logging.DEBUG):
        assert not logging.getLogger("ccxt.base.exchange").isEnabledFor(logging.DEBUG)
