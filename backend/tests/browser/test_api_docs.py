"""The API reference page, /api/v1/docs, through the real Nginx and its CSP: the vendored Swagger UI draws
every operation of the OpenAPI document, loads nothing from another origin, breaks no CSP rule (the ``page``
fixture fails on any console error, CSP violations included), and "Try it out" carries the signed-in user's
token."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from test_flows import login


def test_api_docs_render_under_the_csp_from_this_origin_only(page, site, screenshot):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    spec = site.api().get("/openapi.json").json()
    operations = sum(1 for item in spec["paths"].values() for method in item
                     if method in {"get", "post", "put", "patch", "delete"})

    page.goto("/api/v1/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    assert page.locator(".swagger-ui .opblock").count() == operations
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("Tradefleet")
    screenshot(page, "api-docs")
    origin = urlsplit(site.url).netloc
    foreign = [url for url in requested if not url.startswith("data:") and urlsplit(url).netloc != origin]
    assert foreign == [], foreign
    assert any(url.endswith("/vendor/swagger-ui/swagger-ui-bundle.js") for url in requested)


def test_try_it_out_sends_the_signed_in_users_token(page, site):
    email, password = site.create_user()
    login(page, email, password)
    page.goto("/api/v1/docs")
    operation = page.locator(".opblock-get").filter(has=page.locator('[data-path="/api/v1/users/me"]')).first
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table tbody .response-col_status").first
    live.wait_for()
    assert live.inner_text().strip().startswith("200")
    body = operation.locator(".live-responses-table tbody .response-col_description pre").first.inner_text()
    assert re.search(re.escape(email), body, re.IGNORECASE)
