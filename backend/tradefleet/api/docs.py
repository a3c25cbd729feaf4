"""The API's reference: ``GET /api/v1/openapi.json`` and the interactive page ``GET /api/v1/docs``.

The page is Swagger UI, vendored in ``frontend/vendor/swagger-ui/`` (no CDN) and started by
``frontend/js/pages/api-docs.js``: no inline script or style, so it works under the site's
Content-Security-Policy (``script-src 'self'; style-src 'self'``, ``nginx/snippets/tradefleet-headers.conf``)
and under :data:`DOCS_CSP`, the API's own policy for the page. The script reads the OpenAPI document with
the signed-in user's token (when the tab has one) and adds that token to every "Try it out" request.

``API_DOCS`` chooses who may read the document:

* ``public`` - anyone (the default outside production);
* ``admins`` - ``openapi.json`` needs an admin's bearer token (401 without one, 403 for a trader); the page
  itself is a static shell that shows nothing without the document (the default in production);
* ``off`` - both paths answer 404.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from tradefleet.api.deps import API_PREFIX, get_current_admin
from tradefleet.config import Settings

OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
DOCS_PATH = f"{API_PREFIX}/docs"

# The page's own policy: its scripts, styles and the OpenAPI document from this origin only; Swagger UI
# draws some icons from data: URLs.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API reference · {title}</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/vendor/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="/css/api-docs.css">
<script src="/js/config.js"></script>
<script src="/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script type="module" src="/js/pages/api-docs.js"></script>
</head>
<body>
<main id="main">
<p class="api-docs-status" role="status" data-openapi="{openapi}">Loading the API reference…</p>
<div id="swagger-ui"></div>
</main>
</body>
</html>
"""


def api_docs_mode(settings: Settings) -> str:
    """``public``, ``admins`` or ``off``: ``API_DOCS`` when set, else ``admins`` in production and
    ``public`` elsewhere."""
    if settings.API_DOCS is not None:
        return settings.API_DOCS
    return "admins" if settings.ENVIRONMENT == "production" else "public"


def install_docs(app: FastAPI, settings: Settings) -> None:
    """Add the two routes to ``app`` as ``API_DOCS`` allows (see the module docstring). Create the app
    with ``openapi_url=None, docs_url=None`` so that FastAPI's own (CDN-loading) page is not served."""
    mode = api_docs_mode(settings)
    if mode == "off":
        return
    guard = [Depends(get_current_admin)] if mode == "admins" else []

    def openapi_document() -> Any:
        return JSONResponse(app.openapi())

    def docs_page() -> HTMLResponse:
        return HTMLResponse(DOCS_HTML.format(title=html.escape(settings.PROJECT_NAME), openapi=OPENAPI_PATH))

    app.add_api_route(OPENAPI_PATH, openapi_document, methods=["GET"], include_in_schema=False, dependencies=guard)
    app.add_api_route(DOCS_PATH, docs_page, methods=["GET"], include_in_schema=False)


__all__ = ["DOCS_CSP", "DOCS_PATH", "OPENAPI_PATH", "api_docs_mode", "install_docs"]
