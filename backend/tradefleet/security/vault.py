"""The key vault: exchange API credentials sealed at rest to a public key (libsodium sealed boxes
through PyNaCl; SECRETS.md).

Keys
    A vault key pair is an X25519 key pair (``tradefleet keys generate``), written
    ``vault-pk-<base64url>`` (public) and ``vault-sk-<base64url>`` (private). ``VAULT_PUBLIC_KEYS``
    (every process): newest first, the first seals. ``VAULT_PRIVATE_KEYS`` (only the Celery workers
    that check keys and trade live): open what any of their public keys sealed. The API and beat
    hold public keys only, so no code path of theirs can open a stored key, whatever it calls: a
    sealed box opens with the private key alone. Rotation: a new pair's public key is put first,
    ``tradefleet keys rotate`` (:func:`rotate_all`) re-seals every row under it (it needs the old
    private keys), and the old pair is dropped.

Tokens
    :func:`encrypt_field` seals the JSON ``{"account": <id>, "field": <name>, "value": <plaintext>}``
    to the newest public key (X25519 with an ephemeral key, XSalsa20-Poly1305; libsodium's
    ``crypto_box_seal``) and writes ``sealed1:<key id>:<base64url box>``, where the key id is the
    first 16 hex digits of the SHA-256 of the public key. The account id and field name are inside
    the authenticated plaintext and checked on opening, so a token copied into another row or column
    is refused by :func:`decrypt_field` (:class:`VaultError`) instead of handing one user's key to
    another user's run. Tokens of the symmetric vault this replaces (Fernet, bound the same way) are
    opened only by :func:`rotate_all` with ``API_ENCRYPTION_KEYS`` (``tradefleet keys migrate-sealed``).

Who decrypts
    Only worker processes, at the moment of use: :func:`decrypt_field` and
    :func:`decrypt_credentials` raise :class:`VaultLocked` unless :func:`unlock_decryption` was called
    in this process, which the Celery worker does when it starts (``tradefleet.worker.tasks``), and
    :class:`VaultError` when no private key of ``VAULT_PRIVATE_KEYS`` opens the token (the API and
    beat have none). The API never imports these functions (a test walks ``tradefleet/api`` and the
    API's services to check). Decrypted values travel as :class:`Credentials`, whose repr and str
    mask everything.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import sha256

from nacl.exceptions import CryptoError as NaclCryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from tradefleet.config import PRIVATE_KEY_PREFIX, PUBLIC_KEY_PREFIX, get_settings

log = logging.getLogger(__name__)

MASK = "***"
TOKEN_PREFIX = "sealed1"
"""Tokens read ``sealed1:<key id>:<base64url of the sealed box>``."""


class VaultError(Exception):
    """The vault cannot do this: no public key configured, a token that no configured private key
    opens, a token of the replaced symmetric vault, or a token bound to another account or field.
    Messages never hold key material."""


class VaultLocked(VaultError):
    """Decryption was asked in a process that is not allowed to decrypt (the API)."""


# --- keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class KeyPair:
    """A vault key pair as text: ``public`` (``vault-pk-...``) and ``private`` (``vault-sk-...``).
    The repr shows the public key and its id only."""

    public: str
    private: str

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public!r}, private={MASK!r})"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key_pair() -> KeyPair:
    """A new X25519 key pair for ``VAULT_PUBLIC_KEYS`` / ``VAULT_PRIVATE_KEYS`` (32 random bytes from
    libsodium's ``randombytes``)."""
    private = PrivateKey.generate()
    return KeyPair(public=PUBLIC_KEY_PREFIX + _b64(bytes(private.public_key)),
                   private=PRIVATE_KEY_PREFIX + _b64(bytes(private)))


def _public_key(text: str) -> PublicKey:
    return PublicKey(_unb64(text[len(PUBLIC_KEY_PREFIX):]))


def key_id(public_key: str) -> str:
    """The id of a public key: the first 16 hex digits of the SHA-256 of its 32 bytes."""
    return sha256(bytes(_public_key(public_key))).hexdigest()[:16]


def public_key_of(private_key: str) -> str:
    """The ``vault-pk-...`` text of a ``vault-sk-...`` private key."""
    return PUBLIC_KEY_PREFIX + _b64(bytes(PrivateKey(_unb64(private_key[len(PRIVATE_KEY_PREFIX):])).public_key))


def configured_public_keys() -> tuple[str, ...]:
    """``VAULT_PUBLIC_KEYS``, newest first. :class:`VaultError` when there is none (nothing can be
    stored then; production settings refuse to load without one)."""
    keys = tuple(get_settings().VAULT_PUBLIC_KEYS)
    if not keys:
        raise VaultError("VAULT_PUBLIC_KEYS is not set: exchange keys cannot be stored "
                         "(`tradefleet keys generate` makes a key pair)")
    return keys


def newest_key_id() -> str:
    """The key id of the public key that seals (:class:`VaultError` without one)."""
    return key_id(configured_public_keys()[0])


@lru_cache(maxsize=8)
def _sealer(public_key: str) -> tuple[str, SealedBox]:
    return key_id(public_key), SealedBox(_public_key(public_key))


@lru_cache(maxsize=8)
def _openers(private_keys: tuple[str, ...]) -> dict[str, SealedBox]:
    out = {}
    for text in private_keys:
        private = PrivateKey(_unb64(text[len(PRIVATE_KEY_PREFIX):]))
        out[sha256(bytes(private.public_key)).hexdigest()[:16]] = SealedBox(private)
    return out


def _private_boxes() -> dict[str, SealedBox]:
    """Key id -> the sealed box that opens it, for every key of ``VAULT_PRIVATE_KEYS`` (empty in the
    API and beat)."""
    return _openers(tuple(k.get_secret_value() for k in get_settings().VAULT_PRIVATE_KEYS))


# --- encrypting (any process) --------------------------------------------------------------------


def _payload(value: str, *, account_id: uuid.UUID, field: str) -> bytes:
    return json.dumps({"account": str(account_id), "field": field, "value": value},
                      separators=(",", ":")).encode()


def encrypt_field(value: str, *, account_id: uuid.UUID, field: str) -> str:
    """A token holding ``value`` bound to ``account_id`` and ``field`` (e.g. ``"secret"``), sealed to
    the newest public key: ASCII text for a ``TEXT`` column, about 4/3 of the plaintext plus 120
    characters. :class:`VaultError` without ``VAULT_PUBLIC_KEYS``."""
    kid, box = _sealer(configured_public_keys()[0])
    return f"{TOKEN_PREFIX}:{kid}:{_b64(box.encrypt(_payload(value, account_id=account_id, field=field)))}"


def token_key_id(token: str) -> str | None:
    """The key id a token was sealed to; ``None`` for a token of the replaced symmetric vault
    (Fernet) or anything else that is not a sealed token."""
    parts = token.split(":")
    if len(parts) == 3 and parts[0] == TOKEN_PREFIX:
        return parts[1]
    return None


def _check_binding(raw: bytes, *, account_id: uuid.UUID, field: str) -> str:
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or payload.get("account") != str(account_id) or payload.get("field") != field \
            or not isinstance(payload.get("value"), str):
        raise VaultError(f"the stored {field} of account {account_id} was encrypted for another account "
                         "or field: refused")
    return payload["value"]


def _open(token: str, *, account_id: uuid.UUID, field: str) -> str:
    """Open a sealed token with ``VAULT_PRIVATE_KEYS`` and check its binding (no lock check)."""
    kid = token_key_id(token)
    if kid is None:
        raise VaultError(f"the stored {field} of account {account_id} is not a sealed token (a token of the "
                         "symmetric vault: run `tradefleet keys migrate-sealed`)")
    box = _private_boxes().get(kid)
    if box is None:
        raise VaultError(f"the stored {field} of account {account_id} was sealed to key {kid}, and none of "
                         "VAULT_PRIVATE_KEYS in this process opens it")
    try:
        raw = box.decrypt(_unb64(token.split(":")[2]))
    except (NaclCryptoError, binascii.Error, ValueError, TypeError):
        raise VaultError(f"the stored {field} of account {account_id} does not open with key {kid} "
                         "(damaged or forged)") from None
    return _check_binding(raw, account_id=account_id, field=field)


def _open_legacy(token: str, *, account_id: uuid.UUID, field: str) -> str:
    """Open a Fernet token of the replaced symmetric vault with ``API_ENCRYPTION_KEYS`` and check its
    binding."""
    from cryptography.fernet import Fernet, InvalidToken, MultiFernet

    keys = [k.get_secret_value() for k in get_settings().API_ENCRYPTION_KEYS]
    if not keys:
        raise VaultError(f"the stored {field} of account {account_id} is a token of the symmetric vault, and "
                         "API_ENCRYPTION_KEYS is not set in this process")
    try:
        raw = MultiFernet([Fernet(k) for k in keys]).decrypt(token.encode())
    except InvalidToken:
        raise VaultError(f"the stored {field} of account {account_id} opens with none of "
                         "API_ENCRYPTION_KEYS") from None
    return _check_binding(raw, account_id=account_id, field=field)


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

    Raises :class:`VaultLocked` outside a worker, :class:`VaultError` when no key of
    ``VAULT_PRIVATE_KEYS`` opens the token (none at all in the API and beat), the token is not a
    sealed one, or it belongs to another account or field."""
    if not _process_unlocked:
        raise VaultLocked("this process may not decrypt exchange keys (only workers do, at the moment of use)")
    global _decryptions
    _decryptions += 1
    value = _open(token, account_id=account_id, field=field)
    _remember(value)
    return value


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


def common_key_id(tokens: list[str]) -> str | None:
    """The key id every token of a row is sealed to, or ``None`` when they differ or one is not a
    sealed token (the value of ``exchange_account.vault_key_id``)."""
    ids = {token_key_id(t) for t in tokens if t}
    return ids.pop() if len(ids) == 1 else None


@dataclass
class RotationReport:
    """What :func:`rotate_all` did: accounts and tokens re-sealed, accounts already wholly under the
    newest key, and the ids of accounts with a token that could not be opened (left unchanged)."""

    accounts: int = 0
    tokens: int = 0
    current: int = 0
    """Accounts whose every token was already sealed to the newest key (nothing to do)."""
    left_sealed: int = 0
    """Accounts with tokens under an older public key, left so (``migrate-sealed`` only)."""
    failed: list[uuid.UUID] = field(default_factory=list)
    reasons: dict[uuid.UUID, str] = field(default_factory=dict)
    totp_secrets: int = 0
    """Users' two-factor secrets re-encrypted under the newest ``TOTP_ENCRYPTION_KEY``."""
    failed_users: list[uuid.UUID] = field(default_factory=list)


def rotate_all(*, session, batch_size: int = 200, sealed: bool = True) -> RotationReport:  # noqa: ANN001
    """Re-seal every exchange account's tokens to the newest public key, one committed batch at a
    time (rows locked while rewritten), and re-encrypt every two-factor secret under the newest
    ``TOTP_ENCRYPTION_KEY``. Idempotent; tokens already under the newest key are left as they are.

    Tokens of the symmetric vault are opened with ``API_ENCRYPTION_KEYS``; tokens sealed to an older
    public key with ``VAULT_PRIVATE_KEYS`` (``sealed=False``: left as they are, so ``keys
    migrate-sealed`` needs no private key). A row with a token that cannot be opened is skipped whole
    and reported with the reason. Raises :class:`VaultLocked` when ``sealed`` and this process did
    not unlock decryption, :class:`VaultError` without ``VAULT_PUBLIC_KEYS``."""
    from sqlmodel import select

    from tradefleet.db import lock_for_write
    from tradefleet.models import ExchangeAccount

    if sealed and not _process_unlocked:
        raise VaultLocked("re-sealing opens tokens: unlock decryption in this process first")
    newest = newest_key_id()
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
            tokens = {c: getattr(account, c) for c in ENCRYPTED_COLUMNS if getattr(account, c)}
            todo = {c: t for c, t in tokens.items() if token_key_id(t) != newest}
            if not sealed:
                todo = {c: t for c, t in todo.items() if token_key_id(t) is None}
            try:
                new = {}
                for column, token in todo.items():
                    name = column.removesuffix("_enc")
                    if token_key_id(token) is None:
                        value = _open_legacy(token, account_id=account.id, field=name)
                    else:
                        value = _open(token, account_id=account.id, field=name)
                    _remember(value)
                    new[column] = encrypt_field(value, account_id=account.id, field=name)
            except VaultError as exc:
                report.failed.append(account.id)
                report.reasons[account.id] = str(exc)
                continue
            for column, token in new.items():
                setattr(account, column, token)
                tokens[column] = token
            account.vault_key_id = common_key_id(list(tokens.values()))
            if new:
                report.accounts += 1
                report.tokens += len(new)
            elif account.vault_key_id == newest:
                report.current += 1
            if account.vault_key_id != newest:
                report.left_sealed += 1
        last_id = rows[-1].id
        session.commit()
    _rotate_totp_secrets(session=session, report=report, batch_size=batch_size)
    return report


def _rotate_totp_secrets(*, session, report: RotationReport, batch_size: int) -> None:  # noqa: ANN001
    """Re-encrypt every user's TOTP secret under the newest ``TOTP_ENCRYPTION_KEY``
    (:mod:`tradefleet.security.crypto`), secrets still under ``API_ENCRYPTION_KEYS`` included: dropping
    an old key before would lock every 2FA user it encrypted for out."""
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
