"""The key check (worker side, :func:`tradefleet.execution.keys.check_account`) against the exchange
simulator's private Binance endpoints through the real ccxt: valid keys, keys the exchange rejects,
keys that may withdraw, an exchange that is down or unreachable, keys that cannot be decrypted, and a
check overtaken by new keys. Messages never hold a credential."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from support.common import free_port, vault_settings

from tradefleet.execution.keys import WITHDRAWALS_ENABLED, check_account
from tradefleet.models import ExchangeAccount, ExchangeAccountCreate, ExchangeAccountUpdate, KeyCheckStatus
from tradefleet.services import exchange_accounts as service

pytestmark = pytest.mark.usefixtures("unlocked_vault", "check_queue")


def _account(session, owner, api_key: str, secret: str, *, sandbox: bool = False) -> ExchangeAccount:
    return service.create_account(session=session, owner=owner, account_in=ExchangeAccountCreate(
        exchange="binance", label="sim", api_key=api_key, secret=secret, sandbox=sandbox))


def _result(session, account_id) -> ExchangeAccount:
    session.expire_all()
    return session.get(ExchangeAccount, account_id)


def _no_secret(row: ExchangeAccount, *values: str) -> None:
    for value in values:
        assert value not in (row.check_message or "")


def test_valid_keys_without_withdrawals(session, make_user, sim_account, exchange_sim):
    owner, _ = make_user()
    api_key, secret = sim_account(balances={"USDT": "2500", "BTC": "0.25", "ETH": "0"})
    account = _account(session, owner, api_key, secret)
    assert check_account(account.id) == KeyCheckStatus.valid
    row = _result(session, account.id)
    assert row.check_status == KeyCheckStatus.valid and row.checked_at is not None
    assert row.check_message == "balance read (2 currencies held); withdrawals disabled"
    # It read the balance and the key's permissions, signed with the key.
    paths = [r.split("?")[0] for r in exchange_sim.requests]
    assert "/api/v3/account" in paths and "/sapi/v1/account/apiRestrictions" in paths


def test_keys_that_may_withdraw_are_refused(session, make_user, sim_account):
    owner, _ = make_user()
    api_key, secret = sim_account(permissions={"read": True, "trade": True, "withdraw": True})
    account = _account(session, owner, api_key, secret)
    assert check_account(account.id) == KeyCheckStatus.invalid
    row = _result(session, account.id)
    assert row.check_message == WITHDRAWALS_ENABLED
    assert row.check_message.startswith("withdrawals are enabled on this key; create a key without withdrawal permission")


def test_keys_that_cannot_trade_are_refused(session, make_user, sim_account):
    owner, _ = make_user()
    api_key, secret = sim_account(permissions={"read": True, "trade": False, "withdraw": False})
    account = _account(session, owner, api_key, secret)
    assert check_account(account.id) == KeyCheckStatus.invalid
    assert "may not trade spot" in _result(session, account.id).check_message


@pytest.mark.parametrize("case", ["wrong secret", "unknown key", "no read permission"])
def test_keys_the_exchange_rejects_are_invalid(session, make_user, sim_account, case):
    owner, _ = make_user()
    if case == "no read permission":
        api_key, secret = sim_account(permissions={"read": False, "trade": True, "withdraw": False})
    else:
        api_key, secret = sim_account()
    if case == "wrong secret":
        secret = "wrong" + secret[5:]
    if case == "unknown key":
        api_key = "unknown" + api_key[7:]
    account = _account(session, owner, api_key, secret)
    assert check_account(account.id) == KeyCheckStatus.invalid
    row = _result(session, account.id)
    assert row.check_message.startswith("the exchange rejected these keys: AuthenticationError")
    expected = "Signature for this request is not valid" if case == "wrong secret" else "Invalid API-key"
    assert expected in row.check_message
    _no_secret(row, api_key, secret)


@pytest.mark.parametrize("fault", [{"kind": "down", "count": None}, {"kind": "rate_limit", "count": None,
                                                                       "paths": ["/api/v3/account"]}])
def test_an_exchange_that_is_down_or_limiting_is_an_error_with_the_reason(session, make_user, sim_account,
                                                                           exchange_sim, fault):
    owner, _ = make_user()
    api_key, secret = sim_account()
    account = _account(session, owner, api_key, secret)
    # "down" fails every Binance path (markets too); "rate_limit" only the balance.
    assert httpx.post(f"{exchange_sim.base_url}/sim/faults", json=fault).status_code == 201
    assert check_account(account.id) == KeyCheckStatus.error
    row = _result(session, account.id)
    assert row.check_message.startswith("could not reach binance: ")
    kind = {"down": "ExchangeNotAvailable", "rate_limit": "DDoSProtection"}[fault["kind"]]
    assert kind in row.check_message or "RateLimitExceeded" in row.check_message
    _no_secret(row, api_key, secret)
    assert "signature=" not in row.check_message  # signed query strings are cut


def test_an_unreachable_exchange_is_an_error(session, make_user, settings_env):
    owner, _ = make_user()
    settings_env(EXCHANGE_API_URLS=f'{{"binance": "http://127.0.0.1:{free_port()}"}}', CCXT_TIMEOUT_MS=2000)
    api_key, secret = "k" * 40, "s" * 40
    account = _account(session, owner, api_key, secret)
    assert check_account(account.id) == KeyCheckStatus.error
    row = _result(session, account.id)
    assert row.check_message.startswith("could not reach binance: ExchangeNotAvailable") or \
        row.check_message.startswith("could not reach binance: NetworkError")
    _no_secret(row, api_key, secret)


def test_sandbox_keys_reach_the_simulator_through_the_testnet_urls(session, make_user, sim_account, exchange_sim):
    owner, _ = make_user()
    api_key, secret = sim_account()
    account = _account(session, owner, api_key, secret, sandbox=True)
    assert check_account(account.id) == KeyCheckStatus.valid
    # Binance's testnet has no wallet API: the permissions are not reported there.
    assert _result(session, account.id).check_message.endswith("the exchange does not report key permissions")
    assert any(r.startswith("/api/v3/account") for r in exchange_sim.requests)


def test_keys_that_no_configured_key_opens_are_an_error(session, make_user, settings_env, sim_account):
    owner, _ = make_user()
    api_key, secret = sim_account()
    settings_env(**vault_settings())
    account = _account(session, owner, api_key, secret)
    settings_env(**vault_settings())  # the private key that opened it is lost
    assert check_account(account.id) == KeyCheckStatus.error
    message = _result(session, account.id).check_message
    assert message.startswith("the stored keys cannot be decrypted") and "none of VAULT_PRIVATE_KEYS" in message


def test_a_key_ccxt_cannot_send_is_an_error_not_pending_forever(session, make_user, sim_account, exchange_sim):
    # A key stored before the API checked its characters (or planted in the table): ccxt puts the API
    # key into an HTTP header, which only takes Latin-1, and the exception is none of ccxt's.
    from tradefleet.security import vault

    owner, _ = make_user()
    _, secret = sim_account()
    account = _account(session, owner, "k" * 40, secret)
    planted = "ключ-" + "k" * 36
    account.api_key_enc = vault.encrypt_field(planted, account_id=account.id, field="api_key")
    session.add(account)
    session.commit()
    assert check_account(account.id) == KeyCheckStatus.error
    row = _result(session, account.id)
    assert row.check_status == KeyCheckStatus.error and row.checked_at is not None
    assert row.check_message.startswith("the key check failed: UnicodeEncodeError")
    _no_secret(row, planted, secret)


def test_a_token_copied_from_another_account_is_refused(session, make_user, sim_account):
    owner, _ = make_user()
    mallory, _ = make_user()
    victim_key, victim_secret = sim_account()
    victim = _account(session, owner, victim_key, victim_secret)
    thief = _account(session, mallory, "m" * 40, "n" * 40)
    thief.api_key_enc, thief.secret_enc = victim.api_key_enc, victim.secret_enc  # e.g. through SQL injection
    session.add(thief)
    session.commit()
    assert check_account(thief.id) == KeyCheckStatus.error
    assert "encrypted for another account" in _result(session, thief.id).check_message


def test_a_check_overtaken_by_new_keys_records_nothing(session, make_user, sim_account, exchange_sim):
    owner, _ = make_user()
    api_key, secret = sim_account()
    account = _account(session, owner, api_key, secret)
    # Hold the balance request for a moment; meanwhile the trader replaces the secret.
    httpx.post(f"{exchange_sim.base_url}/sim/faults",
               json={"kind": "timeout", "delay_s": 1.5, "paths": ["/api/v3/account"]})
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(check_account(account.id)))
    worker.start()
    deadline = time.monotonic() + 10
    while not any(r.startswith("/api/v3/account") for r in exchange_sim.requests):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    service.update_account(session=session, owner=owner, account_id=account.id,
                           account_in=ExchangeAccountUpdate(secret="replaced-" + secret))
    worker.join(20)
    assert outcome == [None]  # superseded: the newer check will record its own result
    row = _result(session, account.id)
    assert row.check_status == KeyCheckStatus.pending and row.keys_version == 2


def test_a_deleted_account_is_skipped(session):
    assert check_account(uuid.uuid4()) is None
