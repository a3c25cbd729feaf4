"""The simulator's admin paths (not Binance; no signature).

``POST /sim/accounts`` (create or replace an account, spec in :mod:`tradefleet.sim.accounts`; 201
with the account view), ``GET /sim/accounts/{api_key}`` (balances, orders, trades; 404 ``{"msg"}``),
``POST|GET|DELETE /sim/faults`` (:mod:`tradefleet.sim.faults`). Bad admin input: 400 ``{"msg": "<field>: <problem>"}``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tradefleet.sim.accounts import AccountSpecError
from tradefleet.sim.faults import FaultSpecError, parse_rule
from tradefleet.sim.public import set_weight, sim_state
from tradefleet.sim.signing import book_due_fills


def _admin_error(msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"msg": msg}, status_code=status)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


async def admin_create_account(request: Request) -> Response:
    """``POST /sim/accounts {api_key, secret, balances, permissions}`` -> 201 account view."""
    set_weight(request, 0)
    state = sim_state(request)
    try:
        account = state.accounts.provision(await _json_body(request), now_ms=state.clock.now_ms())
    except AccountSpecError as exc:
        return _admin_error(str(exc))
    with account.lock:
        return JSONResponse(account.view(), status_code=201)


async def admin_get_account(request: Request) -> Response:
    """``GET /sim/accounts/{api_key}`` -> the account view (after matching its resting orders)."""
    set_weight(request, 0)
    state = sim_state(request)
    account = state.accounts.get(request.path_params["api_key"])
    if account is None:
        return _admin_error("api_key: no such account", 404)
    with account.lock:
        booked = book_due_fills(state, account)
        view = account.view()
    if booked:
        state.accounts.save()
    return JSONResponse(view)


async def admin_faults(request: Request) -> Response:
    """``POST /sim/faults`` (201, the rule), ``GET /sim/faults`` (pending rules), ``DELETE /sim/faults``."""
    set_weight(request, 0)
    faults = sim_state(request).faults
    if request.method == "POST":
        try:
            rule = parse_rule(await _json_body(request))
        except FaultSpecError as exc:
            return _admin_error(str(exc))
        faults.add(rule)
        return JSONResponse(rule.view(), status_code=201)
    if request.method == "DELETE":
        return JSONResponse({"cleared": faults.clear()})
    return JSONResponse({"faults": faults.snapshot()})


ROUTES: list[Route] = [
    Route("/sim/accounts", admin_create_account, methods=["POST"]),
    Route("/sim/accounts/{api_key}", admin_get_account, methods=["GET"]),
    Route("/sim/faults", admin_faults, methods=["GET", "POST", "DELETE"]),
]
"""The admin routes; :func:`tradefleet.sim.app.create_app` mounts them after the Binance ones."""
