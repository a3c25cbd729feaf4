"""The key vault: exchange API credentials encrypted at rest with MultiFernet (issue 4, SECRETS.md).

Keys
    ``API_ENCRYPTION_KEYS`` (settings): Fernet keys, newest first. The first encrypts; every key
    decrypts, so a new key is put in front, ``tradefleet keys rotate`` (:func:`rotate_all`)
    re-encrypts every stored token under it, and the old key can then be dropped. Outside
    production an empty setting means a key generated once into ``var/dev-api-encryption.key``
    (mode 0600), shared by the processes of one checkout; in production it is an error.

Tokens
    :func:`encrypt_field` encrypts ``{"account": <id>, "field": <name>, "value": <plaintext>}`` (JSON)
    as one Fernet token (AES-128-CBC with HMAC-SHA256, a timestamp; ``cryptography``'s spec). The
    account id and field name are inside the authenticated payload, so a token copied into another
    row or column is refused by :func:`decrypt_field` (:class:`VaultError`) instead of handing one
    user's key to another user's run.

Who decrypts
    Only worker processes, at the moment of use: :func:`decrypt_field` and
    :func:`decrypt_credentials` raise :class:`VaultLocked` unless :func:`unlock_decryption` was called
    in this process, which the Celery worker does when it starts (``tradefleet.worker.tasks``). The
    API process never calls it, and never imports these functions (a test walks ``tradefleet/api``
    and the API's services to check). Decrypted values travel as :class:`Credentials`, whose repr
    and str mask everything.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as _secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import sha256
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tradefleet.config import REPO_ROOT, get_settings

log = logging.getLogger(__name__)

DEV_KEY_FILE = REPO_ROOT / "var" / "dev-api-encryption.key"
"""Where the local/test key lives when ``API_ENCRYPTION_KEYS`` is empty outside production."""

MASK = "***"


class VaultError(Exception):
    """The vault cannot do this: no key configured (production), a token that no configured key
    opens, or a token bound to another account or field. Messages never hold key material."""


class VaultLocked(VaultError):
    """Decryption was asked in a process that is not allowed to decrypt (the API)."""


# --- keys ----------------------------------------------------------------------------------------


def generate_key() -> str:
    """A new Fernet key: 32 random bytes, url-safe base64 (44 characters)."""
    return Fernet.generate_key().decode()


def _dev_key(path: Path = DEV_KEY_FILE) -> str:
    """The checkout's development key, created on first use (atomically: concurrent processes of one
    ``make run`` end up with the same key)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(generate_key() + "\n")
    try:
        os.link(tmp, path)  # fails if another process won the race: then use theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    log.warning("API_ENCRYPTION_KEYS is empty: using the development key in %s (never in production)", path)
    return path.read_text().strip()


def configured_keys() -> tuple[str, ...]:
    """The Fernet keys in use, newest first. Raises :class:`VaultError` in production without keys."""
    settings = get_settings()
    keys = tuple(k.get_secret_value() for k in settings.API_ENCRYPTION_KEYS)
    if keys:
        return keys
    if settings.ENVIRONMENT == "production":
        raise VaultError("API_ENCRYPTION_KEYS is not set: exchange keys cannot be stored or used")
    return (_dev_key(),)


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def get_vault() -> MultiFernet:
    """The MultiFernet of :func:`configured_keys` (first key encrypts, all decrypt)."""
    return _multifernet(configured_keys())


# --- encrypting (any process) --------------------------------------------------------------------


def encrypt_field(value: str, *, account_id: uuid.UUID, field: str) -> str:
    """A token holding ``value`` bound to ``account_id`` and ``field`` (e.g. ``"secret"``), under the
    newest key. Returns ASCII text for a ``TEXT`` column."""
    payload = json.dumps({"account": str(account_id), "field": field, "value": value}, separators=(",", ":"))
    return get_vault().encrypt(payload.encode()).decode()


def rotate_token(token: str) -> str:
    """``token`` re-encrypted under the newest key, payload (and its binding) unchanged.

    Raises :class:`VaultError` when no configured key opens it."""
    try:
        return get_vault().rotate(token.encode()).decode()
    except InvalidToken:
        raise VaultError("a stored token opens with none of API_ENCRYPTION_KEYS") from None


# --- decrypting (workers only) -------------------------------------------------------------------

_process_unlocked = False
_decryptions = 0


def unlock_decryption() -> None:
    """Allow this process to decrypt. Called by the Celery worker at start; never by the API.

    Also installs :func:`install_log_redaction`: a process that holds keys scrubs them from every
    log record."""
    global _process_unlocked
    _process_unlocked = True
    install_log_redaction()


def lock_decryption() -> None:
    """Forbid decryption in this process again."""
    global _process_unlocked
    _process_unlocked = False


def decryption_unlocked() -> bool:
    return _process_unlocked


def decryption_count() -> int:
    """How many fields this process has decrypted since it started (tests check that a code path,
    e.g. a paper tick, decrypts nothing)."""
    return _decryptions


@contextmanager
def unlocked() -> Iterator[None]:
    """Decryption allowed inside the block (tests, the in-process key check); restored after."""
    before = _process_unlocked
    unlock_decryption()
    try:
        yield
    finally:
        if not before:
            lock_decryption()


def decrypt_field(token: str, *, account_id: uuid.UUID, field: str) -> str:
    """The plaintext of ``token``, which must be bound to ``account_id`` and ``field``.

    Raises :class:`VaultLocked` outside a worker, :class:`VaultError` when no key opens the token or
    it belongs to another account or field."""
    if not _process_unlocked:
        raise VaultLocked("this process may not decrypt exchange keys (only workers do, at the moment of use)")
    global _decryptions
    _decryptions += 1
    try:
        payload = json.loads(get_vault().decrypt(token.encode()))
    except InvalidToken:
        raise VaultError(f"the stored {field} of account {account_id} opens with none of API_ENCRYPTION_KEYS") from None
    if payload.get("account") != str(account_id) or payload.get("field") != field:
        raise VaultError(f"the stored {field} of account {account_id} was encrypted for another account "
                         "or field: refused")
    _remember(payload["value"])
    return payload["value"]


# --- log redaction (processes that decrypt) --------------------------------------------------------

_known_secrets: set[str] = set()
_REDACT_MIN_LEN = 6  # shorter values would scrub ordinary words; real keys are far longer
_redaction_installed = False


def _remember(value: str) -> None:
    if value and len(value) >= _REDACT_MIN_LEN:
        _known_secrets.add(value)


def redact_known(text: str) -> str:
    """``text`` with every credential this process has decrypted replaced by ``***``."""
    for value in sorted(_known_secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def install_log_redaction() -> None:
    """Make every log record of this process free of the credentials it decrypted: the message
    (with its arguments) and any exception text are scrubbed when the record is created, whatever
    the logger, handler or level (a library's debug log of request headers, a traceback's message).
    Idempotent."""
    global _redaction_installed
    if _redaction_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        record = previous(*args, **kwargs)
        if not _known_secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to logging's own error path
            return record
        clean = redact_known(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            import traceback

            record.exc_text = redact_known("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    logging.setLogRecordFactory(factory)
    _redaction_installed = True


@dataclass(frozen=True, repr=False)
class Credentials:
    """Decrypted exchange credentials, held only while a worker uses them.

    ``repr``/``str`` mask every value, so a credential in a log line, a traceback's locals or an
    f-string shows ``***``. :meth:`as_ccxt` gives ccxt's config keys; :meth:`redact` removes every
    value from a text (an exchange's error message) before it is stored or logged."""

    api_key: str
    secret: str
    password: str | None = None
    uid: str | None = None
    _fields: tuple[str, ...] = field(default=("api_key", "secret", "password", "uid"), init=False, compare=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={MASK!r}" for name in self._fields if getattr(self, name))
        return f"Credentials({shown})"

    __str__ = __repr__

    def __reduce__(self):  # noqa: D105 - never pickled into a broker message or a cache
        raise TypeError("Credentials cannot be pickled")

    def as_ccxt(self) -> dict[str, str]:
        """``{"apiKey", "secret", "password"?, "uid"?}`` for a ccxt exchange's config."""
        out = {"apiKey": self.api_key, "secret": self.secret}
        if self.password:
            out["password"] = self.password
        if self.uid:
            out["uid"] = self.uid
        return out

    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.api_key, self.secret, self.password, self.uid) if v)

    def redact(self, text: str) -> str:
        """``text`` with every credential value replaced by ``***`` (longest first)."""
        for value in sorted(self.values(), key=len, reverse=True):
            text = text.replace(value, MASK)
        return text


def decrypt_credentials(account) -> Credentials:  # noqa: ANN001 - an ExchangeAccount row
    """The :class:`Credentials` of an ``ExchangeAccount`` row (worker only: :class:`VaultLocked`
    elsewhere; :class:`VaultError` for a token no key opens or bound to another row)."""
    def one(name: str) -> str | None:
        token = getattr(account, f"{name}_enc")
        return None if token is None else decrypt_field(token, account_id=account.id, field=name)

    return Credentials(api_key=one("api_key") or "", secret=one("secret") or "", password=one("password"),
                       uid=one("uid"))


# --- display -------------------------------------------------------------------------------------


def fingerprint(api_key: str) -> str:
    """A display fingerprint of an API key that is never enough to use it.

    Keys of at least 16 characters (Binance's are 64): the first four and last four characters around
    an ellipsis, ``"vmPU…A31s"``, which a trader can match against the exchange's key list. Shorter
    keys reveal nothing: ``"sha256:"`` and the first 8 hex digits of their SHA-256."""
    if len(api_key) >= 16:
        return f"{api_key[:4]}…{api_key[-4:]}"
    return "sha256:" + sha256(api_key.encode()).hexdigest()[:8]


# --- rotation ------------------------------------------------------------------------------------

ENCRYPTED_COLUMNS = ("api_key_enc", "secret_enc", "password_enc", "uid_enc")


@dataclass
class RotationReport:
    """What :func:`rotate_all` did: accounts and tokens re-encrypted, and the ids of accounts whose
    tokens no configured key opens (left unchanged)."""

    accounts: int = 0
    tokens: int = 0
    failed: list[uuid.UUID] = field(default_factory=list)
    totp_secrets: int = 0
    """Users' two-factor secrets re-encrypted too (``security.crypto``: the same keys)."""
    failed_users: list[uuid.UUID] = field(default_factory=list)


def rotate_all(*, session, batch_size: int = 200) -> RotationReport:  # noqa: ANN001 - a Session
    """Re-encrypt every exchange account's tokens under the newest key, one committed batch at a time
    (rows locked while rewritten). Idempotent: rotating twice changes nothing but the token bytes.

    A row with a token that none of the configured keys opens is skipped whole and reported."""
    from sqlmodel import select

    from tradefleet.db import lock_for_write
    from tradefleet.models import ExchangeAccount

    report = RotationReport()
    last_id: uuid.UUID | None = None
    while True:
        lock_for_write(session)
        statement = select(ExchangeAccount).order_by(ExchangeAccount.id).limit(batch_size).with_for_update()
        if last_id is not None:
            statement = statement.where(ExchangeAccount.id > last_id)
        rows = list(session.exec(statement).all())
        if not rows:
            session.rollback()
            break
        for account in rows:
            try:
                new = {c: rotate_token(getattr(account, c)) for c in ENCRYPTED_COLUMNS if getattr(account, c)}
            except VaultError:
                report.failed.append(account.id)
                continue
            for column, token in new.items():
                setattr(account, column, token)
            report.accounts += 1
            report.tokens += len(new)
        last_id = rows[-1].id
        session.commit()
    _rotate_totp_secrets(session=session, report=report, batch_size=batch_size)
    return report


def _rotate_totp_secrets(*, session, report: RotationReport, batch_size: int) -> None:  # noqa: ANN001
    """Re-encrypt every user's TOTP secret under the newest key. They are encrypted with the same
    ``API_ENCRYPTION_KEYS`` (``security.crypto``): rotating only the exchange keys and then dropping the
    old key would lock every 2FA user out."""
    from sqlmodel import select

    from tradefleet.db import lock_for_write
    from tradefleet.models import User
    from tradefleet.security import crypto

    last_id: uuid.UUID | None = None
    while True:
        lock_for_write(session)
        statement = (select(User).where(User.totp_secret.is_not(None)).order_by(User.id).limit(batch_size)
                     .with_for_update())
        if last_id is not None:
            statement = statement.where(User.id > last_id)
        users = list(session.exec(statement).all())
        if not users:
            session.rollback()
            return
        for user in users:
            try:
                user.totp_secret = crypto.rotate(user.totp_secret)
            except crypto.CryptoError:
                report.failed_users.append(user.id)
                continue
            report.totp_secrets += 1
        last_id = users[-1].id
        session.commit()
