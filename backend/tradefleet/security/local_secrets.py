"""The secrets of one checkout (``make run``, tests): generated on first use into ``var/``, mode 0600,
and reused after, so a local platform never runs on a secret anyone can read in the docs.

:func:`ensure_local_secrets` makes (or reads) a random ``JWT_SECRET_KEY``, a ``TOTP_ENCRYPTION_KEY``
and a vault key pair; ``tradefleet dev`` gives the JWT secret, the TOTP key and the public key to
every process it starts and the private key to the Celery worker only
(:mod:`tradefleet.devstack`). Never copy these files to a server: production takes its secrets from
its own environment (SECRETS.md).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from tradefleet.config import REPO_ROOT
from tradefleet.security.secret_files import ensure_secret_file

VAR_DIR = REPO_ROOT / "var"
JWT_SECRET_FILE = "jwt-secret.key"
TOTP_KEY_FILE = "dev-totp-encryption.key"
VAULT_PUBLIC_FILE = "vault-public.key"
VAULT_PRIVATE_FILE = "vault-private.key"


@dataclass(frozen=True, repr=False)
class LocalSecrets:
    """The files and values of a checkout's secrets (repr without values)."""

    jwt_secret: str
    totp_key: str
    vault_public_key: str
    vault_private_file: Path

    def __repr__(self) -> str:
        return f"LocalSecrets(vault_public_key={self.vault_public_key!r}, vault_private_file={self.vault_private_file})"


def ensure_local_secrets(var_dir: Path = VAR_DIR) -> LocalSecrets:
    """Generate what is missing under ``var_dir`` (mode 0700) and return everything: a JWT secret of
    64 url-safe characters (384 random bits), a Fernet key for two-factor secrets, and a vault key
    pair (``vault-private.key``; its public half in ``vault-public.key``). ``RuntimeError`` when
    the two key files do not belong together (one was replaced by hand)."""
    from tradefleet.security import crypto, vault

    var_dir.mkdir(parents=True, exist_ok=True)
    if var_dir.stat().st_mode & 0o077:
        var_dir.chmod(0o700)
    jwt_secret = ensure_secret_file(var_dir / JWT_SECRET_FILE, lambda: secrets.token_urlsafe(48))
    totp_key = ensure_secret_file(var_dir / TOTP_KEY_FILE, crypto.generate_key)
    private_file = var_dir / VAULT_PRIVATE_FILE
    private = ensure_secret_file(private_file, lambda: vault.generate_key_pair().private)
    public = ensure_secret_file(var_dir / VAULT_PUBLIC_FILE, lambda: vault.public_key_of(private))
    if vault.public_key_of(private) != public:
        raise RuntimeError(f"{var_dir / VAULT_PUBLIC_FILE} is not the public key of {private_file}: "
                           "restore the pair (or delete both, and re-add every exchange key)")
    return LocalSecrets(jwt_secret=jwt_secret, totp_key=totp_key, vault_public_key=public,
                        vault_private_file=private_file)
