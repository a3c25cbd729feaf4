"""The API cannot open the vault: started as ``make run`` starts it (``tradefleet dev``'s generated
secrets, devstack's environment per process), it stores exchange keys sealed to the public key, holds
no private key in its process or its settings, and even its own settings object, unlocked, cannot
decrypt what it stored; the worker's environment can."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.common import free_port

from tradefleet.devstack import BIN, DECRYPTION_SETTINGS, Stack

# Run in the environment of a child of the stack: the app's own settings, decryption unlocked (the
# worst case: a bug or an attacker's code in that process), then the stored secret of one account.
OPEN_STORED_SECRET = """
import json, sys, uuid
from tradefleet.config import get_settings
from tradefleet.db import session_scope
from tradefleet.models import ExchangeAccount
from tradefleet.security import vault
settings = get_settings()
vault.unlock_decryption()
out = {"private_keys": len(settings.VAULT_PRIVATE_KEYS), "legacy_keys": len(settings.API_ENCRYPTION_KEYS),
       "public_keys": len(settings.VAULT_PUBLIC_KEYS)}
with session_scope() as session:
    row = session.get(ExchangeAccount, uuid.UUID(sys.argv[1]))
    try:
        out["secret"] = vault.decrypt_field(row.secret_enc, account_id=row.id, field="secret")
    except vault.VaultError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _run_in(env: dict[str, str], account_id: str) -> dict:
    out = subprocess.run([sys.executable, "-c", OPEN_STORED_SECRET, account_id], env=env, capture_output=True,
                         text=True, timeout=120, check=True)  # noqa: S603
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def make_run_env(settings_env, tmp_path, monkeypatch):
    """This process prepared exactly as ``tradefleet dev`` prepares itself, on a fresh ``var/`` and
    SQLite files under ``tmp_path``, with no vault, TOTP or JWT setting given (the test baseline's are
    removed): returns the worker's extra environment."""
    from tradefleet.cli.stack import local_secrets_env
    from tradefleet.migrations import upgrade

    settings_env(VAULT_PUBLIC_KEYS=None, VAULT_PRIVATE_KEYS=None, TOTP_ENCRYPTION_KEY=None, JWT_SECRET_KEY=None,
                 DATABASE_URL=f"sqlite:///{tmp_path / 'tradefleet.db'}",
                 CELERY_BROKER_URL=f"sqla+sqlite:///{tmp_path / 'celery-broker.db'}")
    umask = os.umask(0o022)
    try:
        worker_env = local_secrets_env(tmp_path / "var")
    finally:
        os.umask(umask)
    settings_env()  # reload with what dev put into the environment (restored after the test)
    upgrade()
    return worker_env


def test_the_api_started_as_make_run_does_cannot_decrypt_a_stored_key(make_run_env, tmp_path):
    secret = "stored-by-the-api-" + os.urandom(12).hex()
    with Stack(worker_env=make_run_env, log_dir=tmp_path / "logs") as stack:
        base = stack.api(port=free_port())
        api_proc = stack.procs["api"]
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=15)
        email, password = "vault@example.com", "a long enough password"
        assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
        token = api.post("/auth/login", data={"username": email, "password": password}).json()["access_token"]
        reply = api.post("/exchange-accounts", headers={"Authorization": f"Bearer {token}"},
                         json={"exchange": "binance", "label": "main", "api_key": "k" * 40, "secret": secret})
        assert reply.status_code == 201, reply.text
        account_id = reply.json()["id"]

        # The running API process: the public key, and no variable that could open a stored key.
        environ = _environ_of(api_proc.pid)
        assert environ["VAULT_PUBLIC_KEYS"].startswith("vault-pk-")
        for name in DECRYPTION_SETTINGS:
            assert environ.get(name, "") == "", name
        assert not any(value.startswith("vault-sk-") for value in environ.values())
        assert not any(secret in value for value in environ.values())

        # The app's own settings in exactly that environment, unlocked: nothing opens.
        api_args = [str(BIN / "uvicorn"), "tradefleet.api.main:app"]
        seen = _run_in(stack.env_for(api_args), account_id)
        assert seen["private_keys"] == 0 and seen["legacy_keys"] == 0 and seen["public_keys"] == 1
        assert "secret" not in seen
        assert seen["error"].startswith("VaultError: ") and "none of VAULT_PRIVATE_KEYS" in seen["error"]
        beat_args = [str(BIN / "celery"), "-A", "tradefleet.worker.app", "beat"]
        assert "secret" not in _run_in(stack.env_for(beat_args), account_id)

        # The worker's environment holds the private key (from its file only) and opens it.
        worker_args = [str(BIN / "celery"), "-A", "tradefleet.worker.app", "worker"]
        worker_env = stack.env_for(worker_args)
        assert worker_env["VAULT_PRIVATE_KEYS_FILE"] == make_run_env["VAULT_PRIVATE_KEYS_FILE"]
        assert _run_in(worker_env, account_id)["secret"] == secret
    # The private key file is the worker's, and private.
    assert (Path(make_run_env["VAULT_PRIVATE_KEYS_FILE"]).stat().st_mode & 0o777) == 0o600
