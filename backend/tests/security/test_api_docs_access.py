"""Who may read the API reference (``API_DOCS``, ``tradefleet.api.docs``): an outsider or a trader cannot read
the OpenAPI document when it is kept for admins, nobody can when it is off, and the page never comes from a CDN
or with an inline script."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tradefleet.api.docs import DOCS_CSP, api_docs_mode
from tradefleet.models import Role

DOCS = "/api/v1/docs"
OPENAPI = "/api/v1/openapi.json"


def _client(settings_env, **env) -> TestClient:
    from tradefleet.api.main import create_app

    settings_env(**env)
    return TestClient(create_app(), base_url="http://127.0.0.1:8000")


def test_default_is_admins_in_production_and_public_elsewhere(settings_env):
    assert api_docs_mode(settings_env()) == "public"
    assert api_docs_mode(settings_env(API_DOCS="off")) == "off"
    production = settings_env(API_DOCS=None).model_copy(update={"ENVIRONMENT": "production"})
    assert api_docs_mode(production) == "admins"


def test_admins_mode_refuses_outsiders_and_traders(db, settings_env, make_user, auth_headers):
    client = _client(settings_env, API_DOCS="admins")
    trader, _ = make_user()
    admin, _ = make_user(role=Role.admin)

    anonymous = client.get(OPENAPI)
    assert anonymous.status_code == 401
    assert "paths" not in anonymous.text
    as_trader = client.get(OPENAPI, headers=auth_headers(trader))
    assert as_trader.status_code == 403
    assert "paths" not in as_trader.text
    as_admin = client.get(OPENAPI, headers=auth_headers(admin))
    assert as_admin.status_code == 200
    assert "/api/v1/runs" in as_admin.json()["paths"]
    # The page is a shell: it holds no part of the document.
    page = client.get(DOCS)
    assert page.status_code == 200
    assert "/api/v1/runs" not in page.text


def test_off_answers_404_for_everyone(db, settings_env, make_user, auth_headers):
    client = _client(settings_env, API_DOCS="off")
    admin, _ = make_user(role=Role.admin)
    for path in (OPENAPI, DOCS):
        assert client.get(path).status_code == 404
        assert client.get(path, headers=auth_headers(admin)).status_code == 404


@pytest.mark.parametrize("mode", ["public", "admins"])
def test_the_page_loads_only_vendored_scripts_without_inline_code(settings_env, mode):
    page = _client(settings_env, API_DOCS=mode).get(DOCS)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert "'unsafe-inline'" not in DOCS_CSP and "script-src 'self'" in DOCS_CSP
    sources = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', page.text)
    assert sources and all(src.startswith("/") and not src.startswith("//") for src in sources), sources
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in sources
    # No inline script: every <script> has a src and an empty body; no <style> element, no style attribute.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) == []
    assert "<style" not in page.text and "style=" not in page.text
