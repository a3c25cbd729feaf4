"""The browser harness itself: the real stack behind the project's nginx config, and chromium driving it.

Also checks what the nginx site promises: the API under /api/, security headers and the CSP on every
response, gzip, cache headers (pages revalidated, vendored libraries long-lived), and an unbuffered event
stream location (the SSE test is in test_events_stream.py).
"""

from __future__ import annotations

import httpx

from tradefleet.config import REPO_ROOT

FRONTEND_DIR = REPO_ROOT / "frontend"


def test_index_renders_through_nginx_with_health_behind_it(site, page, screenshot, axe):
    reply = page.goto("/")
    assert reply is not None and reply.status == 200
    assert page.title().strip()
    assert page.locator("body").inner_text().strip()
    screenshot(page, "harness-index")
    axe(page)

    health = page.request.get("/api/v1/health")
    assert health.status == 200
    body = health.json()
    assert body["status"] == "ok" and body["worker"]["alive"] >= 1


def test_nginx_headers_cache_and_compression(site):
    with httpx.Client(base_url=site.url, timeout=10) as web:
        index = web.get("/", headers={"Accept-Encoding": "gzip"})
        assert index.status_code == 200
        csp = index.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert index.headers["x-content-type-options"] == "nosniff"
        assert index.headers["x-frame-options"] == "DENY"
        assert index.headers["referrer-policy"] == "no-referrer"
        assert index.headers["cache-control"] == "no-cache"
        assert "server" not in index.headers or "/" not in index.headers["server"]  # no version

        # A page by name without ".html".
        assert web.get("/index").status_code == 200
        missing = web.get("/no-such-page")
        assert missing.status_code == 404 and "content-security-policy" in missing.headers

        # Any compressible static file of the app is gzipped and revalidated.
        styles = sorted(p for p in FRONTEND_DIR.rglob("*.css") if "vendor" not in p.parts and p.stat().st_size > 600)
        if styles:
            path = "/" + styles[0].relative_to(FRONTEND_DIR).as_posix()
            css = web.get(path, headers={"Accept-Encoding": "gzip"})
            assert css.status_code == 200 and css.headers.get("content-encoding") == "gzip"
            assert css.headers["cache-control"] == "no-cache"

        vendored = sorted(p for p in (FRONTEND_DIR / "vendor").rglob("*.js")) if (FRONTEND_DIR / "vendor").is_dir() else []
        if vendored:
            lib = web.get("/" + vendored[0].relative_to(FRONTEND_DIR).as_posix())
            assert lib.status_code == 200 and lib.headers["cache-control"] == "max-age=2592000"

        # The API through nginx: JSON errors keep their format and the security headers.
        unauthorized = web.get("/api/v1/users/me")
        assert unauthorized.status_code == 401 and "detail" in unauthorized.json()
        assert unauthorized.headers["x-frame-options"] == "DENY"
