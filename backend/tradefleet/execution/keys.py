"""Exchange keys at the moment of use (worker side only): the key check and the live broker of an
account. This is the only module that decrypts (:func:`tradefleet.security.vault.decrypt_credentials`,
which refuses unless the process unlocked decryption: Celery workers do, the API never does).

The key check (:func:`check_account`, task ``keys.check``) connects with the keys through
:func:`tradefleet.market.exchange.make_exchange` (the sandbox through ccxt's ``set_sandbox_mode``,
the simulator through ``EXCHANGE_API_URLS``), reads the balance, and on Binance reads the key's
permissions (``GET /sapi/v1/account/apiRestrictions``: Binance's "Get API Key Permission"). It
records on the row:

- ``valid``: the balance was read, and the key cannot withdraw;
- ``invalid``: the exchange rejected the keys (ccxt ``AuthenticationError``, ``PermissionDenied``,
  ``AccountSuspended``), or the key may withdraw (refused: the platform never needs it, and a leaked
  key that can withdraw empties the account), or it may not trade spot;
- ``error``: the check could not be done (network, exchange down, rate limit, keys that no private
  key of this worker opens, or any other failure, e.g. a key ccxt cannot put into a header), with
  the reason. A check never leaves the row ``pending``.

Messages are for the trader and never hold a credential: every exchange message has the account's
credential values removed (:meth:`Credentials.redact`) and URL query strings cut before it is stored.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

import ccxt
from sqlalchemy import update
from sqlmodel import Session

from tradefleet.db import session_scope
from tradefleet.market.exchange import UnknownExchange, make_exchange
from tradefleet.models import ExchangeAccount, KeyCheckStatus
from tradefleet.models._types import utcnow
from tradefleet.security.vault import Credentials, VaultError, decrypt_credentials

log = logging.getLogger(__name__)

WITHDRAWALS_ENABLED = ("withdrawals are enabled on this key; create a key without withdrawal permission "
                       "(Tradefleet never withdraws, and a leaked key that can withdraw empties the account)")
NO_SPOT_TRADING = "this key may not trade spot; enable spot trading on the key at the exchange"
MESSAGE_MAX = 500

REJECTED = (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)
UNREACHABLE = (ccxt.NetworkError, ccxt.ExchangeNotAvailable, ccxt.RateLimitExceeded, ccxt.DDoSProtection,
               ccxt.RequestTimeout)

_QUERY = re.compile(r"(https?://[^\s?#\"']+)\?[^\s\"']*")


@dataclass(frozen=True)
class CheckResult:
    status: KeyCheckStatus
    message: str


def clean_message(text: str, credentials: Credentials | None) -> str:
    """An exchange's error text made safe to store: URL query strings (signed parameters) cut,
    every credential value replaced by ``***``, whitespace folded, at most :data:`MESSAGE_MAX` chars."""
    text = _QUERY.sub(r"\1?…", text)
    if credentials is not None:
        text = credentials.redact(text)
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


def _describe(exc: Exception, credentials: Credentials) -> str:
    return clean_message(f"{type(exc).__name__}: {exc}", credentials)


def probe(exchange_id: str, *, sandbox: bool, credentials: Credentials) -> CheckResult:
    """Connect with ``credentials`` and judge them (see the module docstring). Never raises for an
    exchange's answer; every outcome is a :class:`CheckResult`."""
    try:
        exchange = make_exchange(exchange_id, credentials=credentials.as_ccxt(), sandbox=sandbox)
    except (UnknownExchange, ccxt.NotSupported) as exc:
        return CheckResult(KeyCheckStatus.error, _describe(exc, credentials))
    try:
        balance = exchange.fetch_balance()
        currencies = sum(1 for v in (balance.get("total") or {}).values() if v)
        restrictions = None
        if hasattr(exchange, "sapi_get_account_apirestrictions"):  # Binance and its regional twins
            try:
                restrictions = exchange.sapi_get_account_apirestrictions()
            except ccxt.NotSupported:
                restrictions = None  # e.g. a testnet without the wallet API
            except ccxt.BadRequest as exc:
                if not sandbox:
                    raise
                log.info("sandbox of %s reports no key permissions: %s", exchange_id, type(exc).__name__)
    except REJECTED as exc:
        return CheckResult(KeyCheckStatus.invalid, "the exchange rejected these keys: " + _describe(exc, credentials))
    except UNREACHABLE as exc:
        return CheckResult(KeyCheckStatus.error, f"could not reach {exchange_id}: " + _describe(exc, credentials))
    except ccxt.BaseError as exc:
        return CheckResult(KeyCheckStatus.error, f"{exchange_id} answered an error: " + _describe(exc, credentials))
    if restrictions is not None:
        if _flag(restrictions.get("enableWithdrawals")):
            return CheckResult(KeyCheckStatus.invalid, WITHDRAWALS_ENABLED)
        if "enableSpotAndMarginTrading" in restrictions and not _flag(restrictions["enableSpotAndMarginTrading"]):
            return CheckResult(KeyCheckStatus.invalid, NO_SPOT_TRADING)
        permissions = "withdrawals disabled"
    else:
        permissions = "the exchange does not report key permissions"
    return CheckResult(KeyCheckStatus.valid, f"balance read ({currencies} currencies held); {permissions}")


def _flag(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def check_account(account_id: uuid.UUID) -> KeyCheckStatus | None:
    """Run the key check of one account and record the result; returns it (None when the account no
    longer exists or its keys changed meanwhile: the newer check records its own result).

    The keys are decrypted here and dropped when the function returns; the result is written only if
    ``keys_version`` is still the one that was checked."""
    with session_scope() as session:
        account = session.get(ExchangeAccount, account_id)
        if account is None:
            return None
        version, exchange_id, sandbox = account.keys_version, account.exchange, account.sandbox
        try:
            credentials = decrypt_credentials(account)
        except VaultError as exc:
            result = CheckResult(KeyCheckStatus.error, f"the stored keys cannot be decrypted: {exc}")
            credentials = None
    if credentials is not None:
        try:
            result = probe(exchange_id, sandbox=sandbox, credentials=credentials)
        except Exception as exc:  # noqa: BLE001 - any failure is the check's result, never a row left pending
            log.warning("key check of account %s failed: %s", account_id, type(exc).__name__)
            result = CheckResult(KeyCheckStatus.error, "the key check failed: " + _describe(exc, credentials))
    with session_scope() as session:
        written = session.exec(
            update(ExchangeAccount)
            .where(ExchangeAccount.id == account_id, ExchangeAccount.keys_version == version)
            .values(check_status=result.status, check_message=result.message, checked_at=utcnow())
        ).rowcount
        session.commit()
    log.info("key check of account %s (%s%s): %s", account_id, exchange_id, ", sandbox" if sandbox else "",
             result.status.value if written else "superseded")
    return result.status if written else None


def live_broker_for_account(*, session: Session, account_id: uuid.UUID):  # noqa: ANN201 - a CcxtBroker
    """The live broker of an account, its keys decrypted now (cached per account and key version in
    this worker process). Raises ``BrokerUnavailable`` when the account is gone or its keys cannot
    be decrypted (the message holds no key material)."""
    from tradefleet.execution.live import BrokerUnavailable, broker_for

    account = session.get(ExchangeAccount, account_id)
    if account is None:
        raise BrokerUnavailable("the run's exchange account was deleted")
    try:
        credentials = decrypt_credentials(account)
    except VaultError as exc:
        raise BrokerUnavailable(f"the keys of exchange account {account.label!r} cannot be used: {exc}") from None
    return broker_for(account.exchange, credentials=credentials.as_ccxt(), sandbox=account.sandbox,
                      cache_key=(account.id, account.keys_version))
