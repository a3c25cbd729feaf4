"""The browser harness itself: the real stack behind the project's nginx config, and chromium driving it.

Also checks what the nginx site promises: the API under /api/, security headers and the CSP on every
response, gzip, cache headers (pages revalidated, vendored libraries long-lived), an unbuffered event
stream location, and that the production file with its TLS server passes ``nginx -t``.
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


def test_event_stream_through_nginx_is_unbuffered(site, settings_env):
    """A single small event reaches the client through nginx while the stream stays open: with proxy
    buffering on, nginx would hold it until its buffer filled or the API closed the stream."""
    import uuid

    from support.sse_client import SSEReader

    from tradefleet.events.outbox import publish
    from tradefleet.events.updates import StatusUpdate
    from tradefleet.models import RunStatus

    email, password = site.create_user()
    api = site.login_api(email, password)
    user_id = uuid.UUID(api.get("/users/me").json()["id"])
    ticket = api.post("/events/ticket").json()["ticket"]
    with SSEReader(f"{site.url}/api/v1/events/stream", params={"ticket": ticket}) as stream:
        assert stream.status_code == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in stream.response_headers  # never gzipped
        stream.next("ready", timeout_s=20)
        settings_env(REDIS_URL=site.redis_url, DATABASE_URL=site.database_url)
        run_id = uuid.uuid4()
        assert publish(user_id, StatusUpdate(run_id=run_id, status=RunStatus.running, status_reason=None)) == 1
        got = stream.next("status", timeout_s=20)
    assert got.json() == {"run_id": str(run_id), "status": "running", "status_reason": None} and got.id


def test_production_site_config_passes_nginx_t(tmp_path):
    """nginx/tradefleet.conf (ports 80 and 443, Let's Encrypt paths) as DEPLOYMENT.md installs it, checked
    with ``nginx -t`` against a throw-away self-signed certificate in place of the real one."""
    import datetime
    import subprocess

    from support.common import nginx_binary, unavailable

    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        unavailable("the cryptography package is needed to make a test certificate")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tradefleet.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    live = tmp_path / "letsencrypt" / "live" / "tradefleet.example.com"
    live.mkdir(parents=True)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (live / "fullchain.pem").write_bytes(pem)
    (live / "chain.pem").write_bytes(pem)
    (live / "privkey.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    site_conf = (REPO_ROOT / "nginx" / "tradefleet.conf").read_text()
    assert "/etc/letsencrypt/live/tradefleet.example.com/" in site_conf
    conf_dir = tmp_path / "conf"
    (conf_dir / "sites-enabled").mkdir(parents=True)
    (conf_dir / "snippets").symlink_to(REPO_ROOT / "nginx" / "snippets", target_is_directory=True)
    (conf_dir / "sites-enabled" / "tradefleet.conf").write_text(
        site_conf.replace("/etc/letsencrypt/", f"{tmp_path}/letsencrypt/"))
    (conf_dir / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n include /etc/nginx/mime.types;\n include sites-enabled/*.conf;\n}}\n")
    nginx = nginx_binary()
    check = subprocess.run([nginx, "-t", "-e", str(tmp_path / "error.log"), "-p", str(conf_dir), "-c",
                            str(conf_dir / "nginx.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr
