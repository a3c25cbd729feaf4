"""Attack test: signed in as user B, try every route on user A's runs, backtests, exchange accounts and
run events (read, change, delete), with every method the route table offers: 404 each time, and no row
of any table changed.

The routes are read from the application's route table (its OpenAPI document), so a route added later
under ``/runs/{...}``, ``/backtests/{...}`` or ``/exchange-accounts/{...}`` is attacked too without
editing this test. A route that needs a body gets a valid one generated from its schema, so the 404 comes
from the owner check and not from validation.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, select as sa_select

from tradefleet.models import (
    Backtest,
    BacktestStatus,
    EquitySnapshot,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunEvent,
    RunMode,
    RunStatus,
)

PREFIX = "/api/v1"
OWNED = ("/runs/", "/backtests/", "/exchange-accounts/")
PARAM = re.compile(r"\{([^}]+)\}")
# Written by the security middleware and the audit log on purpose (who tried what): not user data.
IGNORED_TABLES = {"audit_event", "alembic_version"}


def owned_routes(app) -> list[tuple[str, str]]:
    """``(method, path)`` of every route with a path parameter under the owned collections."""
    routes = []
    for path, item in app.openapi()["paths"].items():
        relative = path[len(PREFIX):]
        if relative.startswith(OWNED) and PARAM.search(relative):
            routes += [(method.upper(), path) for method in item if method in ("get", "post", "put", "patch", "delete")]
    return routes


def sample(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A small valid instance of a JSON schema of the OpenAPI document (required properties only)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return sample(spec["components"]["schemas"][name], spec)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return sample(options[0], spec) if options else None
    if "allOf" in schema:
        return sample(schema["allOf"][0], spec)
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: sample(prop, spec) for name, prop in schema.get("properties", {}).items()
                if name in schema.get("required", [])}
    if kind == "array":
        return [sample(schema.get("items", {}), spec)] * schema.get("minItems", 0)
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(max(1, schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1))
    if kind == "boolean":
        return False
    if kind == "string":
        if schema.get("format") == "uuid":
            return str(uuid.uuid4())
        if schema.get("format") == "date-time":
            return "2024-01-01T00:00:00Z"
        return "x" * max(1, schema.get("minLength", 1))
    return None


def request_body(spec: dict[str, Any], path: str, method: str) -> Any:
    content = spec["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return sample(schema, spec) if schema else None


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every row of every table (reflected from the database), sorted, except :data:`IGNORED_TABLES`."""
    metadata = MetaData()
    metadata.reflect(bind=engine)
    rows = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in IGNORED_TABLES:
                continue
            rows[table.name] = sorted((tuple(map(repr, r)) for r in conn.execute(sa_select(table))))
    return rows


def a_resources(session, owner_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """User A's running paper run with an open order, an event and an equity snapshot; a finished
    backtest. Returns the ids by path parameter kind."""
    now = datetime.now(UTC)
    run = Run(owner_id=owner_id, strategy="sma_cross", params={"fast": 10, "slow": 30}, exchange="binance",
              symbol="BTC/USDT", timeframe="1m", mode=RunMode.paper, stake=10_000, status=RunStatus.running,
              started_at=now, cash=10_000)
    session.add(run)
    session.flush()
    session.add(Order(run_id=run.id, client_order_id=f"tf-{uuid.uuid4().hex[:20]}", symbol="BTC/USDT",
                      side=OrderSide.buy, type=OrderType.market, amount=0.01, status=OrderStatus.open,
                      reason="enter_long", signal_candle_ms=1704067200000))
    session.add(RunEvent(run_id=run.id, kind="started", message="started"))
    session.add(EquitySnapshot(run_id=run.id, candle_ms=1704067200000, cash=10_000, position_amount=0,
                               price=42_000, equity=10_000))
    backtest = Backtest(owner_id=owner_id, strategy="sma_cross", params={}, exchange="binance", symbol="BTC/USDT",
                        timeframe="1h", start=now - timedelta(days=30), end=now, stake=10_000, fee=0.001,
                        status=BacktestStatus.done, progress=100)
    session.add(backtest)
    session.commit()
    return {"run": run.id, "backtest": backtest.id}


def a_exchange_account(client, spec, headers) -> uuid.UUID | None:
    """A's exchange account, created through ``POST /exchange-accounts``
    when this build has that route; None otherwise."""
    if f"{PREFIX}/exchange-accounts" not in spec["paths"]:
        return None
    reply = client.post(f"{PREFIX}/exchange-accounts", headers=headers, json={
        "exchange": "binance", "label": "main", "api_key": "k" * 24, "secret": "s" * 48, "sandbox": True})
    assert reply.status_code == 201, reply.text
    return uuid.UUID(reply.json()["id"])


def id_for(param: str, ids: dict[str, uuid.UUID], path: str) -> str:
    kind = param.removesuffix("_id")
    if kind in ids:
        return str(ids[kind])
    if path.startswith(f"{PREFIX}/runs/"):
        return str(ids["run"])
    if path.startswith(f"{PREFIX}/backtests/"):
        return str(ids["backtest"])
    return str(ids["exchange_account"])


def test_user_b_gets_404_on_every_route_of_user_a(app, client, db, session, make_user, auth_headers):
    spec = app.openapi()
    routes = owned_routes(app)
    paths = {p for _, p in routes}
    # The route table really is read: today's run and backtest routes are all there.
    assert {f"{PREFIX}/runs/{{run_id}}", f"{PREFIX}/runs/{{run_id}}/stop", f"{PREFIX}/runs/{{run_id}}/events",
            f"{PREFIX}/backtests/{{backtest_id}}"} <= paths
    assert ("DELETE", f"{PREFIX}/backtests/{{backtest_id}}") in routes

    user_a, _ = make_user(email="alice@example.com")
    user_b, _ = make_user(email="bob@example.com")
    ids = a_resources(session, user_a.id)
    a_headers, b_headers = auth_headers(user_a), auth_headers(user_b)
    account_id = a_exchange_account(client, spec, a_headers)
    if account_id is not None:
        ids["exchange_account"] = account_id

    # A sees their own run and backtest (so a 404 for B means "not yours", not "broken route").
    assert client.get(f"{PREFIX}/runs/{ids['run']}", headers=a_headers).status_code == 200
    assert client.get(f"{PREFIX}/backtests/{ids['backtest']}", headers=a_headers).status_code == 200
    assert len(client.get(f"{PREFIX}/runs/{ids['run']}/events", headers=a_headers).json()) == 1

    before = snapshot(db)
    assert before["run"] and before["order"] and before["run_event"] and before["backtest"]
    tried = []
    for method, path in routes:
        url = PARAM.sub(lambda m, p=path: id_for(m.group(1), ids, p), path)
        body = request_body(spec, path, method)
        reply = client.request(method, url, headers=b_headers, json=body)
        tried.append((method, path))
        assert reply.status_code == 404, (method, path, reply.status_code, reply.text)
        assert str(ids["run"]) not in reply.text and "alice" not in reply.text

    assert len(tried) == len(routes) >= 10
    assert snapshot(db) == before
    # B's own lists show nothing of A.
    assert client.get(f"{PREFIX}/runs", headers=b_headers).json()["count"] == 0
    assert client.get(f"{PREFIX}/backtests", headers=b_headers).json()["count"] == 0


def test_body_generator_makes_valid_bodies(app):
    from fastapi.encoders import jsonable_encoder

    from tradefleet.models import RunCreate

    spec = app.openapi()
    body = sample({"$ref": "#/components/schemas/RunCreate"}, spec)
    assert RunCreate.model_validate(jsonable_encoder(body))
