"""Exchange accounts (a trader's API keys): add, read, update, delete, ask for a key check.

Keyword-only, session first; the only place that commits on behalf of the API. Every read takes the
owner and filters on it: another user's account is a 404, like one that does not exist.

Secrets
    The API process only **seals** (:func:`tradefleet.security.vault.encrypt_field`, to the vault's
    public key, bound to the account id and the field) and cannot decrypt: it holds no private key,
    and nothing here reads a key back. The key check runs
    in a worker (task ``keys.check`` → :func:`tradefleet.execution.keys.check_account`), enqueued
    after the commit that stored the keys. Replies carry only the masked ``fingerprint``.

Deleting
    An account that a live run which is not ``stopped`` uses is refused with 409 (stop those runs
    first), so a live run never points at missing keys. Stopped runs keep their history; their
    ``exchange_account_id`` becomes NULL (the foreign key's ``ON DELETE SET NULL``), and such a run
    cannot be started again.

Audit
    :func:`_audit` is the one place that reports what happened to an account (add, update, delete,
    check requested), without any secret; every change is written to the audit log.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.errors import ConflictError, DomainError, validation_error
from tradefleet.market.exchange import ExchangeTraits, UnknownExchange, exchange_traits
from tradefleet.models import (
    ExchangeAccount,
    ExchangeAccountCreate,
    ExchangeAccountUpdate,
    KeyCheckStatus,
    Run,
    RunMode,
    RunStatus,
    User,
)
from tradefleet.models._types import utcnow
from tradefleet.models.exchange_account import CREDENTIAL_FIELDS
from tradefleet.security.vault import VaultError, common_key_id, encrypt_field, fingerprint
from tradefleet.services import audit
from tradefleet.services.ownership import get_owned_or_404
from tradefleet.services.quotas import lock_owner

log = logging.getLogger(__name__)

TASK_NAME = "keys.check"

_CCXT_CREDENTIAL = {"api_key": "apiKey", "secret": "secret", "password": "password", "uid": "uid"}


# --- audit ---------------------------------------------------------------------------------------


def _audit(action: str, *, session: Session, actor: User, account: ExchangeAccount, commit: bool = True,
           **detail: Any) -> None:
    """Record ``action`` (``exchange_account.add`` / ``.update`` / ``.delete`` / ``.check``) on
    ``account`` by ``actor`` in the audit log (:func:`tradefleet.services.audit.record`, with the
    request's IP and user agent) and an INFO log line. Never receives a secret: ``detail`` holds field
    names and flags only. ``commit=False`` leaves the commit to the caller (a delete commits with it)."""
    log.info("audit %s actor=%s account=%s exchange=%s label=%r fingerprint=%s %s", action, actor.id,
             account.id, account.exchange, account.label, account.fingerprint,
             " ".join(f"{k}={v}" for k, v in sorted(detail.items())))
    audit.record(session=session, actor=actor, action=action, target=("exchange_account", account.id),
                 detail={"exchange": account.exchange, "label": account.label,
                         "fingerprint": account.fingerprint, **detail}, commit=commit)


# --- validation ----------------------------------------------------------------------------------


def _exchange_traits(exchange: str) -> ExchangeTraits:
    """What ccxt declares about an enabled exchange; 422 naming ``exchange`` otherwise."""
    enabled = get_settings().EXCHANGES_ENABLED
    if exchange not in enabled:
        raise validation_error("exchange", f"exchange {exchange!r} is not enabled on this platform "
                               f"(enabled: {', '.join(enabled)})")
    try:
        return exchange_traits(exchange)
    except UnknownExchange as exc:
        raise validation_error("exchange", f"{exchange!r} is not an exchange ccxt knows") from exc


def _validate(*, exchange: str, sandbox: bool, present: set[str]) -> None:
    """422 (naming the field) when the exchange is not enabled or unknown, has no sandbox but one is
    asked, or needs a credential that is missing (ccxt's ``requiredCredentials``: OKX and KuCoin need
    a ``password``). Builds the ccxt class locally: no network."""
    traits = _exchange_traits(exchange)
    if sandbox and not traits.has_testnet:
        raise validation_error("sandbox", f"{exchange} has no sandbox or testnet in ccxt; use sandbox: false")
    for name in CREDENTIAL_FIELDS:
        if _CCXT_CREDENTIAL[name] in traits.required_credentials and name not in present:
            raise validation_error(name, f"{exchange} needs a {name} with its API keys")


def _printable_ascii(text: str) -> bool:
    return all(" " <= c <= "~" for c in text)


def _secret_values(body: ExchangeAccountCreate | ExchangeAccountUpdate) -> dict[str, str]:
    """The credential fields given in ``body``, in clear (only to be sealed at once). 422 naming the
    field for a blank value, leading or trailing spaces, or any character outside printable ASCII
    (``" "`` to ``"~"``): exchanges issue keys of letters, digits and punctuation, and send them in
    HTTP headers and signatures, where anything else never authenticates."""
    out = {}
    for name in CREDENTIAL_FIELDS:
        value = getattr(body, name)
        if value is not None:
            text = value.get_secret_value()
            if not text.strip() or text != text.strip():
                raise validation_error(name, "must not be blank or have leading or trailing spaces")
            if not _printable_ascii(text):
                raise validation_error(name, "must contain printable ASCII characters only (letters, digits, "
                                       "punctuation), as exchanges issue them")
            out[name] = text
    return out


def _store_secrets(account: ExchangeAccount, values: dict[str, str]) -> None:
    """Seal ``values`` into the row's columns and keep ``vault_key_id`` true: the newest key's id
    when every token of the row is now sealed to it, else ``NULL``."""
    try:
        sealed = {name: encrypt_field(value, account_id=account.id, field=name) for name, value in values.items()}
    except VaultError as exc:
        # No public key configured: the operator's to fix, and nothing is written.
        log.error("exchange keys cannot be stored: %s", exc)
        raise DomainError("exchange keys cannot be stored right now: the server's vault has no public key; "
                          "contact an administrator", status_code=503) from None
    for name, token in sealed.items():
        setattr(account, f"{name}_enc", token)
    account.vault_key_id = common_key_id([getattr(account, f"{n}_enc") for n in CREDENTIAL_FIELDS
                                          if getattr(account, f"{n}_enc")])
    if "api_key" in values:
        account.fingerprint = fingerprint(values["api_key"])


# --- the key check task --------------------------------------------------------------------------


def enqueue_key_check(account_id: uuid.UUID) -> None:
    """Send ``keys.check`` with the account id to the broker (tests may record it instead)."""
    from tradefleet.jobs.app import send_task

    send_task(TASK_NAME, str(account_id))


def _queue_check(*, session: Session, account: ExchangeAccount) -> None:
    """After the commit: enqueue the check; if the broker is down say so on the account (the trader
    can ask again with ``POST /{id}/check``) instead of failing the request that stored the keys."""
    try:
        enqueue_key_check(account.id)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        log.error("cannot enqueue the key check of account %s: %s", account.id, type(exc).__name__)
        account.check_status = KeyCheckStatus.error
        account.check_message = "the key check could not be queued (task broker unavailable); ask again shortly"
        account.checked_at = utcnow()
        session.add(account)
        session.commit()
        session.refresh(account)


# --- operations ----------------------------------------------------------------------------------


def create_account(*, session: Session, owner: User, account_in: ExchangeAccountCreate) -> ExchangeAccount:
    """Validate, encrypt and store a new account (check status ``pending``), commit, then enqueue its
    key check. 422 naming the field (see :func:`_validate`); 409 beyond
    ``MAX_EXCHANGE_ACCOUNTS_PER_USER`` accounts (counted under the owner's lock, so parallel creations
    cannot pass it). Nothing is written when refused."""
    values = _secret_values(account_in)
    _validate(exchange=account_in.exchange, sandbox=account_in.sandbox, present=set(values))
    lock_owner(session, owner.id)  # held to the commit: parallel creations count one after another
    count = session.exec(select(func.count()).select_from(ExchangeAccount)
                         .where(ExchangeAccount.owner_id == owner.id)).one()
    limit = get_settings().MAX_EXCHANGE_ACCOUNTS_PER_USER
    if count >= limit:
        raise ConflictError(f"you already have {count} exchange accounts (limit {limit}, "
                            "MAX_EXCHANGE_ACCOUNTS_PER_USER); delete one first")
    account = ExchangeAccount(owner_id=owner.id, exchange=account_in.exchange, label=account_in.label,
                              sandbox=account_in.sandbox, api_key_enc="", secret_enc="", fingerprint="")
    _store_secrets(account, values)
    session.add(account)
    session.commit()
    session.refresh(account)
    _audit("exchange_account.add", session=session, actor=owner, account=account, sandbox=account.sandbox,
           fields=",".join(sorted(values)))
    _queue_check(session=session, account=account)
    return account


def get_account_or_404(*, session: Session, owner: User, account_id: uuid.UUID, lock: bool = False) -> ExchangeAccount:
    """The owner's account; 404 if it does not exist or belongs to someone else."""
    return get_owned_or_404(session=session, model=ExchangeAccount, row_id=account_id, owner_id=owner.id,
                            what="exchange account", lock=lock)


def list_accounts(*, session: Session, owner: User, skip: int = 0, limit: int = 100
                  ) -> tuple[list[ExchangeAccount], int]:
    """The owner's accounts, newest first, and their total count."""
    where = ExchangeAccount.owner_id == owner.id
    count = session.exec(select(func.count()).select_from(ExchangeAccount).where(where)).one()
    rows = session.exec(select(ExchangeAccount).where(where)
                        .order_by(ExchangeAccount.created_at.desc(), ExchangeAccount.id)
                        .offset(skip).limit(limit)).all()
    return list(rows), count


def update_account(*, session: Session, owner: User, account_id: uuid.UUID,
                   account_in: ExchangeAccountUpdate) -> ExchangeAccount:
    """Change the label, the sandbox flag or any credential. New credentials or a new sandbox flag
    set the check ``pending`` and enqueue a new key check after the commit; a label alone does not.
    404 for another user's account; 422 as for :func:`create_account`."""
    values = _secret_values(account_in)
    account = get_account_or_404(session=session, owner=owner, account_id=account_id, lock=True)
    sandbox = account.sandbox if account_in.sandbox is None else account_in.sandbox
    present = {n for n in CREDENTIAL_FIELDS if getattr(account, f"{n}_enc")} | set(values)
    _validate(exchange=account.exchange, sandbox=sandbox, present=present)
    if account_in.label is not None:
        account.label = account_in.label
    recheck = bool(values) or sandbox != account.sandbox
    account.sandbox = sandbox
    if recheck:
        _store_secrets(account, values)
        account.keys_version += 1
        account.check_status = KeyCheckStatus.pending
        account.check_message = None
        account.checked_at = None
    account.updated_at = utcnow()
    session.add(account)
    session.commit()
    session.refresh(account)
    _audit("exchange_account.update", session=session, actor=owner, account=account, fields=",".join(sorted(values)) or "-",
           sandbox=account.sandbox, recheck=recheck)
    if recheck:
        _queue_check(session=session, account=account)
    return account


def live_runs_using(*, session: Session, account_id: uuid.UUID) -> list[Run]:
    """Active live runs (:attr:`RunStatus.ACTIVE`) that trade with ``account_id``."""
    return list(session.exec(select(Run).where(Run.exchange_account_id == account_id, Run.mode == RunMode.live,
                                               Run.status.in_(RunStatus.ACTIVE))).all())


def delete_account(*, session: Session, owner: User, account_id: uuid.UUID) -> None:
    """Delete the owner's account and its encrypted keys. 409 while a live run that is not stopped
    uses it (the reply names how many; stop them first); 404 for another user's account."""
    account = get_account_or_404(session=session, owner=owner, account_id=account_id, lock=True)
    using = live_runs_using(session=session, account_id=account.id)
    if using:
        ids = ", ".join(str(r.id) for r in using[:5]) + (" ..." if len(using) > 5 else "")
        raise ConflictError(f"this exchange account is used by {len(using)} live run(s) that are not stopped "
                            f"({ids}); stop them first")
    _audit("exchange_account.delete", session=session, actor=owner, account=account, commit=False)
    session.delete(account)
    session.commit()


def request_check(*, session: Session, owner: User, account_id: uuid.UUID) -> ExchangeAccount:
    """Set the check ``pending`` and enqueue a new key check (after the commit)."""
    account = get_account_or_404(session=session, owner=owner, account_id=account_id, lock=True)
    account.check_status = KeyCheckStatus.pending
    account.check_message = None
    session.add(account)
    session.commit()
    session.refresh(account)
    _audit("exchange_account.check", session=session, actor=owner, account=account)
    _queue_check(session=session, account=account)
    return account


def live_broker_for_account(*, session: Session, account_id: uuid.UUID):  # noqa: ANN201 - a CcxtBroker
    """Worker side: the live broker of an account, keys decrypted at this moment.

    Delegates to :func:`tradefleet.execution.keys.live_broker_for_account` (imported here lazily so
    that the API process never loads the decrypting module); raises ``BrokerUnavailable``."""
    from tradefleet.execution import keys

    return keys.live_broker_for_account(session=session, account_id=account_id)
