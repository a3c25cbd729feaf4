"""Simulated exchange accounts: API key, secret, balances, permissions, orders and trades per key.

Provisioned through ``POST /sim/accounts`` (:mod:`tradefleet.sim.admin`), a JSON file
(``tradefleet exchange-sim --accounts accounts.json``: a list of account specs) or
``create_app(accounts=[...])``. An account spec is::

    {"api_key": "k1", "secret": "s1", "balances": {"USDT": "10000", "BTC": 0.5},
     "permissions": {"read": true, "trade": true, "withdraw": false, "ip_restrict": false}}

(``permissions`` default: read and trade allowed, withdrawals and IP restriction off).

Concurrency: each account has a lock (``SimAccount.lock``, a ``threading.RLock``) that a request holds
while it matches, checks and changes the account -- no ``await`` happens under it, so one request's
check-and-book is atomic against every other request (in the event loop or another thread).
Order and trade ids come from store-wide counters under the store lock.

Persistence (optional ``state_file``): after every change the whole store is written to a temporary
file and renamed over ``state_file`` (atomic on POSIX), and read back at start, so a simulator restart
keeps accounts, balances, orders and trades.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tradefleet.sim.orders import SimFill, SimOrder

DEFAULT_PERMISSIONS = {"read": True, "trade": True, "withdraw": False, "ip_restrict": False}


class AccountSpecError(ValueError):
    """An account spec is malformed; the message names the field."""


@dataclass
class SimBalance:
    """One asset of an account: ``free`` and ``locked`` (in open orders), Decimals."""

    free: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)


@dataclass
class SimAccount:
    """A simulated Binance spot account (everything guarded by :attr:`lock`)."""

    api_key: str
    secret: str
    balances: dict[str, SimBalance]
    permissions: dict[str, bool]
    created_ms: int = 0
    orders: dict[int, SimOrder] = field(default_factory=dict)
    by_client_id: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    trades: list[SimFill] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    recent_orders: deque[float] = field(default_factory=deque, repr=False, compare=False)
    """Monotonic wall times of the last new orders (the ORDERS rate limit)."""

    def balance(self, asset: str) -> SimBalance:
        """The balance of ``asset`` (created empty on first use)."""
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = SimBalance()
        return bal

    def add_order(self, order: SimOrder) -> None:
        self.orders[order.order_id] = order
        self.by_client_id.setdefault((order.symbol, order.client_order_id), []).append(order.order_id)

    def open_orders(self, symbol: str | None = None) -> list[SimOrder]:
        """Open (NEW / PARTIALLY_FILLED) orders, oldest first."""
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def find(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None) -> SimOrder | None:
        """The order by id, else the latest order with that client order id (Binance's lookup)."""
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is None or order.symbol != symbol:
                return None
            if client_order_id is not None and order.client_order_id != client_order_id:
                return None
            return order
        ids = self.by_client_id.get((symbol, client_order_id or ""), [])
        return self.orders[ids[-1]] if ids else None

    def open_with_client_id(self, symbol: str, client_order_id: str) -> bool:
        return any(self.orders[i].is_open for i in self.by_client_id.get((symbol, client_order_id), []))

    def view(self) -> dict[str, Any]:
        """The admin view (``GET /sim/accounts/{api_key}``): never the secret."""
        return {
            "api_key": self.api_key,
            "permissions": dict(self.permissions),
            "balances": {
                a: {"free": f"{b.free:.8f}", "locked": f"{b.locked:.8f}"} for a, b in sorted(self.balances.items())
            },
            "orders": [o.query_view() for o in self.orders.values()],
            "trades": [t.trade_view() for t in self.trades],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "secret": self.secret,
            "permissions": self.permissions,
            "created_ms": self.created_ms,
            "balances": {a: [str(b.free), str(b.locked)] for a, b in self.balances.items()},
            "orders": [o.to_json() for o in self.orders.values()],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SimAccount:
        account = cls(
            api_key=raw["api_key"],
            secret=raw["secret"],
            permissions=dict(raw["permissions"]),
            created_ms=int(raw.get("created_ms", 0)),
            balances={a: SimBalance(Decimal(f), Decimal(lk)) for a, (f, lk) in raw["balances"].items()},
        )
        for o in raw.get("orders", []):
            order = SimOrder.from_json(o)
            account.add_order(order)
            account.trades.extend(order.fills)
        account.trades.sort(key=lambda t: t.trade_id)
        return account


def parse_spec(spec: Any) -> tuple[str, str, dict[str, Decimal], dict[str, bool]]:
    """Validate an account spec (module docstring) -> ``(api_key, secret, balances, permissions)``.

    Raises :class:`AccountSpecError` naming the bad field.
    """
    if not isinstance(spec, dict):
        raise AccountSpecError("account: expected a JSON object")
    api_key, secret = spec.get("api_key"), spec.get("secret")
    for name, value in (("api_key", api_key), ("secret", secret)):
        if not isinstance(value, str) or not value or len(value) > 256:
            raise AccountSpecError(f"{name}: a non-empty string of at most 256 characters is required")
    raw_balances = spec.get("balances", {})
    if not isinstance(raw_balances, dict):
        raise AccountSpecError("balances: expected an object {asset: amount}")
    balances: dict[str, Decimal] = {}
    for asset, amount in raw_balances.items():
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            value = Decimal(-1)
        if not isinstance(asset, str) or not asset.isalnum() or not value.is_finite() or value < 0:
            raise AccountSpecError(f"balances.{asset}: a non-negative number is required")
        balances[asset.upper()] = value
    raw_perms = spec.get("permissions", {})
    if not isinstance(raw_perms, dict):
        raise AccountSpecError("permissions: expected an object")
    permissions = dict(DEFAULT_PERMISSIONS)
    for name, value in raw_perms.items():
        if name not in DEFAULT_PERMISSIONS or not isinstance(value, bool):
            raise AccountSpecError(f"permissions.{name}: one of {sorted(DEFAULT_PERMISSIONS)} with a boolean value")
        permissions[name] = value
    return api_key, secret, balances, permissions


class SimAccountStore:
    """All simulated accounts by API key, with id counters and optional JSON persistence."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._accounts: dict[str, SimAccount] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self.state_file = Path(state_file) if state_file else None
        if self.state_file is not None and self.state_file.exists():
            self._load(self.state_file)

    def __iter__(self) -> Iterator[SimAccount]:
        with self._lock:
            return iter(list(self._accounts.values()))

    def get(self, api_key: str) -> SimAccount | None:
        with self._lock:
            return self._accounts.get(api_key)

    def provision(self, spec: Any, *, now_ms: int = 0) -> SimAccount:
        """Create (or replace, orders and trades dropped) the account of ``spec``; persisted."""
        api_key, secret, balances, permissions = parse_spec(spec)
        account = SimAccount(
            api_key=api_key,
            secret=secret,
            balances={a: SimBalance(free=v) for a, v in balances.items()},
            permissions=permissions,
            created_ms=now_ms,
        )
        with self._lock:
            self._accounts[api_key] = account
        self.save()
        return account

    def next_order_id(self) -> int:
        with self._lock:
            value, self._next_order_id = self._next_order_id, self._next_order_id + 1
            return value

    def next_trade_id(self) -> int:
        with self._lock:
            value, self._next_trade_id = self._next_trade_id, self._next_trade_id + 1
            return value

    def save(self) -> None:
        """Write the store to ``state_file`` (no-op without one); atomic replace.

        Call it without holding an account lock. Lock order: ``_save_lock``, then one account lock at
        a time; the store lock ``_lock`` is a leaf (nothing else is taken while it is held).
        """
        if self.state_file is None:
            return
        with self._save_lock:
            with self._lock:
                accounts = list(self._accounts.values())
                payload: dict[str, Any] = {"next_order_id": self._next_order_id, "next_trade_id": self._next_trade_id}
            rows = []
            for account in accounts:
                with account.lock:
                    rows.append(account.to_json())
            payload["accounts"] = rows
            tmp = self.state_file.with_name(self.state_file.name + ".tmp")
            tmp.write_text(json.dumps(payload))
            os.replace(tmp, self.state_file)

    def _load(self, path: Path) -> None:
        payload = json.loads(path.read_text())
        self._next_order_id = int(payload.get("next_order_id", 1))
        self._next_trade_id = int(payload.get("next_trade_id", 1))
        for raw in payload.get("accounts", []):
            account = SimAccount.from_json(raw)
            self._accounts[account.api_key] = account


def load_accounts_file(path: Path) -> list[dict[str, Any]]:
    """Account specs from a JSON file holding a list of them (or ``{"accounts": [...]}``)."""
    raw = json.loads(Path(path).read_text())
    if isinstance(raw, dict):
        raw = raw.get("accounts")
    if not isinstance(raw, list):
        raise AccountSpecError(f"{path}: expected a JSON list of accounts")
    for spec in raw:
        parse_spec(spec)
    return raw
