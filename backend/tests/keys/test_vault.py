"""The key vault: sealed boxes bound to the row and field, opened only where unlocked and only with
a private key, masked credentials, fingerprints, settings that never echo a key, the checkout's
generated secrets, and `tradefleet keys rotate` / `migrate-sealed` / `generate` / `status`."""

from __future__ import annotations

import json
import logging
import pickle
import uuid

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from sqlmodel import select
from support.common import vault_settings
from typer.testing import CliRunner

from tradefleet.config import Settings
from tradefleet.models import ExchangeAccount, ExchangeAccountCreate
from tradefleet.security import vault
from tradefleet.security.vault import Credentials, VaultError, VaultLocked


def test_a_token_decrypts_only_for_its_account_and_field(unlocked_vault):
    a, b = uuid.uuid4(), uuid.uuid4()
    token = vault.encrypt_field("s3cr3t-value", account_id=a, field="secret")
    assert "s3cr3t-value" not in token and token.startswith(f"sealed1:{vault.newest_key_id()}:")
    assert vault.decrypt_field(token, account_id=a, field="secret") == "s3cr3t-value"
    with pytest.raises(VaultError, match="another account or field"):
        vault.decrypt_field(token, account_id=b, field="secret")  # copied into another row
    with pytest.raises(VaultError, match="another account or field"):
        vault.decrypt_field(token, account_id=a, field="api_key")  # copied into another column
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(VaultError, match="does not open"):
        vault.decrypt_field(tampered, account_id=a, field="secret")
    other = vault.generate_key_pair()
    foreign = vault.SealedBox(vault._public_key(other.public)).encrypt(vault._payload("x", account_id=a, field="secret"))
    with pytest.raises(VaultError, match="none of VAULT_PRIVATE_KEYS"):
        vault.decrypt_field(f"sealed1:{other.key_id}:{vault._b64(foreign)}", account_id=a, field="secret")
    with pytest.raises(VaultError, match="not a sealed token"):
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


def test_without_the_private_key_even_an_unlocked_process_cannot_decrypt(settings_env):
    # What the API and beat hold: the public key only. Unlocking (a bug, an attacker's code) opens nothing.
    account_id = uuid.uuid4()
    token = vault.encrypt_field("only-the-worker-reads-this", account_id=account_id, field="secret")
    settings = settings_env(VAULT_PRIVATE_KEYS=None)
    assert settings.VAULT_PUBLIC_KEYS and not settings.VAULT_PRIVATE_KEYS
    with vault.unlocked():
        with pytest.raises(VaultError, match="none of VAULT_PRIVATE_KEYS"):
            vault.decrypt_field(token, account_id=account_id, field="secret")


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
    pair = vault.generate_key_pair()
    monkeypatch.setenv("VAULT_PRIVATE_KEYS", f"{pair.private},vault-sk-not-a-key-but-secret-ish")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "key 2 is not a vault private key" in str(info.value)
    assert "secret-ish" not in str(info.value) and pair.private not in str(info.value)
    # A private key pasted into the public list (read by every process) is refused, unechoed.
    monkeypatch.delenv("VAULT_PRIVATE_KEYS")
    monkeypatch.setenv("VAULT_PUBLIC_KEYS", f"{pair.public},{pair.private}")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "key 2 is a private key" in str(info.value) and pair.private[9:] not in str(info.value)
    monkeypatch.setenv("VAULT_PUBLIC_KEYS", pair.public)
    monkeypatch.setenv("TOTP_ENCRYPTION_KEY", "not-a-fernet-key-secret-ish")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "key 1 is not a Fernet key" in str(info.value) and "secret-ish" not in str(info.value)


def test_keys_are_read_from_their_files(settings_env, tmp_path):
    pair = vault.generate_key_pair()
    (tmp_path / "pub").write_text(f"# newest first\n{pair.public}\n\n{vault.generate_key_pair().public}\n")
    (tmp_path / "priv").write_text(pair.private + "\n")
    (tmp_path / "jwt").write_text("j" * 48 + "\n")
    settings = settings_env(VAULT_PUBLIC_KEYS=None, VAULT_PRIVATE_KEYS=None, JWT_SECRET_KEY=None,
                            VAULT_PUBLIC_KEYS_FILE=tmp_path / "pub", VAULT_PRIVATE_KEYS_FILE=tmp_path / "priv",
                            JWT_SECRET_KEY_FILE=tmp_path / "jwt")
    assert settings.VAULT_PUBLIC_KEYS[0] == pair.public and len(settings.VAULT_PUBLIC_KEYS) == 2
    assert [k.get_secret_value() for k in settings.VAULT_PRIVATE_KEYS] == [pair.private]
    assert settings.JWT_SECRET_KEY.get_secret_value() == "j" * 48
    with pytest.raises(ValidationError, match="VAULT_PRIVATE_KEYS and VAULT_PRIVATE_KEYS_FILE are both set"):
        settings_env(VAULT_PRIVATE_KEYS=pair.private)
    with pytest.raises(ValidationError, match="VAULT_PUBLIC_KEYS_FILE: cannot read"):
        settings_env(VAULT_PRIVATE_KEYS=None, VAULT_PUBLIC_KEYS_FILE=tmp_path / "missing")
    (tmp_path / "bad").write_text("vault-pk-short-secret-ish\n")
    with pytest.raises(ValidationError) as info:
        settings_env(VAULT_PUBLIC_KEYS_FILE=tmp_path / "bad")
    assert "VAULT_PUBLIC_KEYS_FILE: key 1 is not a vault public key" in str(info.value)
    assert "secret-ish" not in str(info.value)
    # An empty value unsets: what process launchers use to keep a file away from a process.
    settings = settings_env(VAULT_PUBLIC_KEYS_FILE=tmp_path / "pub", VAULT_PRIVATE_KEYS_FILE="")
    assert settings.VAULT_PRIVATE_KEYS == []


def test_production_without_keys_cannot_use_the_vault(settings_env, monkeypatch):
    # First line: production settings without a public key do not load at all (config.production_problems).
    with pytest.raises(ValidationError, match="VAULT_PUBLIC_KEYS: missing"):
        settings_env(VAULT_PUBLIC_KEYS=None, ENVIRONMENT="production", JWT_SECRET_KEY="prod-" + "x" * 40)
    # Second line: settings built without validation never get a key from anywhere else.
    unchecked = Settings.model_construct(ENVIRONMENT="production", VAULT_PUBLIC_KEYS=[], VAULT_PRIVATE_KEYS=[])
    monkeypatch.setattr(vault, "get_settings", lambda: unchecked)
    with pytest.raises(VaultError, match="VAULT_PUBLIC_KEYS is not set"):
        vault.encrypt_field("k", account_id=uuid.uuid4(), field="api_key")


def test_the_checkouts_secrets_are_made_once_private_and_belong_together(tmp_path):
    import stat

    from tradefleet.security.local_secrets import ensure_local_secrets

    var = tmp_path / "var"
    first = ensure_local_secrets(var)
    again = ensure_local_secrets(var)
    assert (first.jwt_secret, first.totp_key, first.vault_public_key) == \
        (again.jwt_secret, again.totp_key, again.vault_public_key)
    assert len(first.jwt_secret) >= 64 and first.jwt_secret != "changethis"
    Fernet(first.totp_key)
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    for path in var.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in var.iterdir()) == ["dev-totp-encryption.key", "jwt-secret.key",
                                                    "vault-private.key", "vault-public.key"]
    private = first.vault_private_file.read_text().strip()
    assert vault.public_key_of(private) == first.vault_public_key
    assert private not in repr(first) and first.jwt_secret not in repr(first)
    # A hand-replaced half of the pair is refused rather than sealing to a key nobody holds.
    (var / "vault-public.key").write_text(vault.generate_key_pair().public + "\n")
    with pytest.raises(RuntimeError, match="is not the public key of"):
        ensure_local_secrets(var)


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


def _env(*pairs, private=None) -> dict[str, str]:
    """Settings of public keys ``pairs`` (newest first) and the private keys of ``private`` (default: all)."""
    private = pairs if private is None else private
    return {"VAULT_PUBLIC_KEYS": ",".join(p.public for p in pairs),
            "VAULT_PRIVATE_KEYS": ",".join(p.private for p in private) or None}


def test_rotate_re_seals_every_row_to_the_newest_key(session, make_user, settings_env, check_queue, unlocked_vault):
    from tradefleet.cli import app
    from tradefleet.security import crypto

    k1, k2 = vault.generate_key_pair(), vault.generate_key_pair()
    t1, t2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings_env(**_env(k1), TOTP_ENCRYPTION_KEY=t1)
    owner, _ = make_user()
    plain = _add(session, owner, 5)
    assert len(check_queue.ids) == 5 and all(check_queue.committed)
    before = {a.id: a.secret_enc for a in session.exec(select(ExchangeAccount)).all()}
    assert {a.vault_key_id for a in session.exec(select(ExchangeAccount)).all()} == {k1.key_id}
    owner.totp_secret = crypto.encrypt("JBSWY3DPEHPK3PXP")
    session.add(owner)
    session.commit()

    # The new public key goes first; the CLI has the old private key only (the new one is not needed).
    settings_env(**_env(k2, k1, private=[k1]), TOTP_ENCRYPTION_KEY=f"{t2},{t1}")
    result = CliRunner().invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert f"re-sealed 12 tokens of 5 exchange accounts to key {k2.key_id}; 0 accounts were already" in result.output
    assert "re-encrypted 1 two-factor secrets" in result.output
    again = CliRunner().invoke(app, ["keys", "rotate"])
    assert again.exit_code == 0 and "re-sealed 0 tokens of 0 exchange accounts" in again.output
    assert "5 accounts were already sealed to it" in again.output

    settings_env(**_env(k2), TOTP_ENCRYPTION_KEY=t2)  # the old pair and TOTP key are gone
    assert _decrypt_all(session) == plain
    session.refresh(owner)
    assert crypto.decrypt(owner.totp_secret) == "JBSWY3DPEHPK3PXP"
    for account in session.exec(select(ExchangeAccount)).all():
        assert account.secret_enc != before[account.id] and account.vault_key_id == k2.key_id
        assert all(vault.token_key_id(getattr(account, c)) == k2.key_id
                   for c in vault.ENCRYPTED_COLUMNS if getattr(account, c))
    with pytest.raises(VaultError, match="none of VAULT_PRIVATE_KEYS"):
        vault.decrypt_field(next(iter(before.values())), account_id=next(iter(before)), field="secret")
    status = CliRunner().invoke(app, ["keys", "status"])
    assert f"     5  key {k2.key_id}  (newest)" in status.output


def test_rotate_reports_rows_no_key_opens_and_leaves_them(session, make_user, settings_env, check_queue,
                                                          unlocked_vault):
    from tradefleet.cli import app

    k1, k2, lost = (vault.generate_key_pair() for _ in range(3))
    owner, _ = make_user()
    settings_env(**_env(k1))
    kept = _add(session, owner, 2)
    settings_env(**_env(lost))
    orphan = _add(session, owner, 1)
    orphan_id = next(iter(orphan))
    orphan_token = session.get(ExchangeAccount, orphan_id).secret_enc

    settings_env(**_env(k2, k1, private=[k1]))
    result = CliRunner().invoke(app, ["keys", "rotate"])
    assert result.exit_code == 1
    assert "re-sealed 5 tokens of 2 exchange accounts" in result.output
    assert str(orphan_id) in result.output and f"sealed to key {lost.key_id}" in result.output
    session.expire_all()
    assert session.get(ExchangeAccount, orphan_id).secret_enc == orphan_token
    settings_env(**_env(k2))
    rows = session.exec(select(ExchangeAccount).where(ExchangeAccount.id != orphan_id)).all()
    assert {a.id: vault.decrypt_credentials(a).secret for a in rows} == {i: v["secret"] for i, v in kept.items()}


def _legacy_token(key: str, value: str, *, account_id: uuid.UUID, field: str) -> str:
    """A token exactly as the symmetric vault wrote it: Fernet over the bound JSON payload."""
    payload = json.dumps({"account": str(account_id), "field": field, "value": value}, separators=(",", ":"))
    return Fernet(key).encrypt(payload.encode()).decode()


def test_migrate_sealed_re_seals_symmetric_vault_rows_without_a_private_key(session, make_user, settings_env):
    from tradefleet.cli import app
    from tradefleet.security import crypto

    old = Fernet.generate_key().decode()
    owner, _ = make_user()
    owner.totp_secret = Fernet(old).encrypt(b"JBSWY3DPEHPK3PXP").decode()  # as the old vault's keys did
    session.add(owner)
    plain, ids = {}, []
    for i in range(3):
        account = ExchangeAccount(owner_id=owner.id, exchange="binance", label=f"old {i}", api_key_enc="",
                                  secret_enc="", fingerprint="x")
        values = {"api_key": f"legacy-key-{i}-{uuid.uuid4().hex}", "secret": f"legacy-secret-{i}-{uuid.uuid4().hex}"}
        account.api_key_enc = _legacy_token(old, values["api_key"], account_id=account.id, field="api_key")
        account.secret_enc = _legacy_token(old, values["secret"], account_id=account.id, field="secret")
        session.add(account)
        plain[account.id] = values
        ids.append(account.id)
    copied = ExchangeAccount(owner_id=owner.id, exchange="binance", label="copied", fingerprint="x",
                             api_key_enc=_legacy_token(old, "k" * 30, account_id=ids[0], field="api_key"),
                             secret_enc=_legacy_token(old, "s" * 30, account_id=ids[0], field="secret"))
    session.add(copied)
    session.commit()
    copied_token = copied.secret_enc

    pair = vault.generate_key_pair()
    settings_env(VAULT_PUBLIC_KEYS=pair.public, VAULT_PRIVATE_KEYS=None, API_ENCRYPTION_KEYS=old)
    status = CliRunner().invoke(app, ["keys", "status"])
    assert "     4  symmetric vault (run `keys migrate-sealed`)" in status.output
    result = CliRunner().invoke(app, ["keys", "migrate-sealed"])
    assert result.exit_code == 1, result.output  # the copied row is refused, by name
    assert f"re-sealed 6 tokens of 3 exchange accounts to key {pair.key_id}" in result.output
    assert str(copied.id) in result.output and "another account or field" in result.output
    assert "re-encrypted 1 two-factor secrets" in result.output

    # The services' environment: no API_ENCRYPTION_KEYS any more; the workers' private key opens every row.
    settings_env(**_env(pair), API_ENCRYPTION_KEYS=None)
    session.expire_all()
    with vault.unlocked():
        for account_id, values in plain.items():
            row = session.get(ExchangeAccount, account_id)
            assert row.vault_key_id == pair.key_id
            creds = vault.decrypt_credentials(row)
            assert (creds.api_key, creds.secret) == (values["api_key"], values["secret"])
    assert session.get(ExchangeAccount, copied.id).secret_enc == copied_token
    session.refresh(owner)
    assert crypto.decrypt(owner.totp_secret) == "JBSWY3DPEHPK3PXP"  # under TOTP_ENCRYPTION_KEY alone


def test_keys_generate_prints_a_working_pair(settings_env):
    from tradefleet.cli import app

    out = CliRunner().invoke(app, ["keys", "generate"]).output
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith("#"))
    settings_env(VAULT_PUBLIC_KEYS=values["VAULT_PUBLIC_KEY"], VAULT_PRIVATE_KEYS=values["VAULT_PRIVATE_KEY"])
    account_id = uuid.uuid4()
    token = vault.encrypt_field("generated-pair-works", account_id=account_id, field="secret")
    assert token.split(":")[1] in out
    with vault.unlocked():
        assert vault.decrypt_field(token, account_id=account_id, field="secret") == "generated-pair-works"
    Fernet(CliRunner().invoke(app, ["keys", "generate", "--totp"]).output.strip())


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
