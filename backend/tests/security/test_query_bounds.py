"""Huge integers in list queries: ``skip``/``offset`` of 2^63 (or 10^20) and epoch-ms values past the year 3000
answer 422 naming the parameter, on SQLite and PostgreSQL, as a trader and as an admin; never a 500 from a
64-bit overflow inside the query (``tradefleet.api.params``)."""

from __future__ import annotations

import uuid

import pytest

from tradefleet.api.params import MAX_EPOCH_MS, MAX_OFFSET
from tradefleet.models import Role

HUGE = [2**63, 10**20, MAX_OFFSET + 1]
RUN = uuid.uuid4()
TRADER_ROUTES = [("/api/v1/runs", "skip"), ("/api/v1/backtests", "skip"), ("/api/v1/exchange-accounts", "skip"),
                 ("/api/v1/strategies/uploads", "offset"), (f"/api/v1/runs/{RUN}/orders", "skip"),
                 (f"/api/v1/runs/{RUN}/equity", "skip")]
ADMIN_ROUTES = [("/api/v1/admin/runs", "offset"), ("/api/v1/admin/users", "offset"),
                ("/api/v1/admin/strategy-versions", "offset")]


def _refused(response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [f"query.{field}"]


@pytest.mark.parametrize("value", HUGE)
def test_huge_offsets_are_422_naming_the_parameter(client, make_user, auth_headers, value):
    trader, _ = make_user()
    admin, _ = make_user(role=Role.admin)
    for path, field in TRADER_ROUTES:
        _refused(client.get(path, params={field: value}, headers=auth_headers(trader)), field)
    for path, field in ADMIN_ROUTES:
        _refused(client.get(path, params={field: value}, headers=auth_headers(admin)), field)
    # The largest allowed offset is served: an empty page, not an error.
    listed = client.get("/api/v1/runs", params={"skip": MAX_OFFSET}, headers=auth_headers(trader))
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_epoch_ms_past_the_year_3000_is_422(client, make_user, auth_headers):
    trader, _ = make_user()
    for path, field in [(f"/api/v1/runs/{RUN}/equity", "since_ms"), (f"/api/v1/runs/{RUN}/candles", "until_ms")]:
        _refused(client.get(path, params={field: MAX_EPOCH_MS + 1}, headers=auth_headers(trader)), field)
        _refused(client.get(path, params={field: 2**63}, headers=auth_headers(trader)), field)
