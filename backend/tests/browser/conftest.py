"""Browser-test harness: the real platform behind the real Nginx, driven by Debian's chromium.

Once per test session (the first browser test pays ~20 s): a fresh PostgreSQL database (migrated), Redis
(``TEST_REDIS_URL``, flushed), a loopback SMTP server (aiosmtpd), then the real processes of
``tradefleet.devstack.Stack`` -- exchange simulator (120x clock), uvicorn API, a Celery worker and beat --
and a real ``nginx`` on a free loopback port running the project's ``nginx/snippets/tradefleet-site.conf``
(the file production includes) with the root at ``frontend/`` and ``/api/`` proxied to the API. Chromium
(``/usr/bin/chromium``, never ``playwright install``) is launched headless through Playwright's sync API.

Fixtures (for the flow tests in ``tests/browser/test_*.py``)
    ``site`` (session) -> :class:`Site`
        ``site.url`` the Nginx base URL (``http://127.0.0.1:<port>``: open pages as ``site.url + "/login.html"``),
        ``site.api_url`` the API behind it (direct), ``site.api()`` an ``httpx.Client`` on
        ``<nginx>/api/v1``; ``site.create_user(email=None, password=None, role="trader", verified=True)
        -> (email, password)`` writes a user straight into the database (for admins and set-up users);
        ``site.login_api(email, password) -> httpx.Client`` with a bearer token; ``site.stack`` the
        processes (``site.stack.check_alive()``), ``site.database_url``, ``site.logs`` (one log per process,
        plus ``nginx-error.log`` and ``nginx-access.log``).
    ``mailbox`` (session) -> :class:`Mailbox`
        the loopback SMTP server the API sends through: ``mailbox.wait_for(to, subject_contains=None,
        timeout_s=60) -> email.message.EmailMessage``, ``mailbox.links(message) -> [url, ...]``.
    ``browser`` (session): the Playwright ``Browser``.
    ``context`` -> a fresh ``BrowserContext`` per test (1440x900, ``base_url=site.url``: ``page.goto("/")``
        works); ``new_page()`` gives a second user's isolated page (its own context) in the same test.
    ``page`` -> a ``Page`` in ``context``. The test FAILS (at teardown) if the browser console logged any
        error (including a CSP violation or a failed resource load) or the page threw (``pageerror``).
        ``browser_errors`` is the list being collected, if a test wants to look at it.
    ``screenshot(page, name, full_page=True) -> Path`` saves ``test-artifacts/screenshots/<name>.png``
        at the repository root.
    ``viewport``: ``viewport.mobile(page)`` (375x812), ``viewport.desktop(page)`` (1440x900),
        ``viewport.assert_fits(page)`` (no horizontal scrolling at the current width).
    ``axe(page, context=None, disable=()) -> list[dict]``: runs the vendored axe-core
        (``tests/browser/vendor/axe-core``) on the page and FAILS on any serious or critical violation;
        returns every violation (minor and moderate included) for inspection.

What the served pages must satisfy (nginx/snippets/tradefleet-headers.conf sends the CSP
``default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; ...``):
no inline ``<script>`` and no ``<style>`` elements or ``style="..."`` attributes in HTML (setting
``element.style`` from a module is fine), no ``on*=`` handler attributes, everything from this origin (vendored
libraries under ``frontend/vendor/<library>/``, served with a 30-day cache; everything else is revalidated on
each load). A missing favicon is a console error: link one (``<link rel="icon" href="/favicon.svg">``).
Pages resolve with or without ``.html`` (``try_files $uri $uri.html $uri/``).

Without chromium, nginx, PostgreSQL or Redis the browser tests are skipped (failed with ``CI=true``);
``make test`` installs chromium and nginx (``make system-deps``).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from support.common import (DEFAULT_REDIS_URL, free_port, nginx_binary, scratch_postgres_database, stack_env,
                            unavailable, vault_settings)
from support.nginx import nginx_command, render_nginx_conf

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FRONTEND_DIR = REPO_ROOT / "frontend"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
MOBILE = {"width": 375, "height": 812}
DESKTOP = {"width": 1440, "height": 900}


# --- loopback SMTP -------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """Messages received by the loopback SMTP server, newest last."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def add(self, raw: bytes) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self._lock.notify_all()

    def wait_for(self, to: str, subject_contains: str | None = None, timeout_s: float = 60) -> EmailMessage:
        """The first message to ``to`` (whose subject contains ``subject_contains``, case-insensitive);
        AssertionError after ``timeout_s``."""
        def match(m: EmailMessage) -> bool:
            return to.lower() in str(m.get("To", "")).lower() and (
                subject_contains is None or subject_contains.lower() in str(m.get("Subject", "")).lower())

        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                found = next((m for m in self.messages if match(m)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail to {to} (subject containing {subject_contains!r}) in "
                                         f"{timeout_s:g} s; got {[str(m.get('Subject')) for m in self.messages]}")
                self._lock.wait(left)

    @staticmethod
    def links(message: EmailMessage) -> list[str]:
        """Every http(s) URL in the message's text and HTML parts, in order, without duplicates."""
        found: list[str] = []
        for part in message.walk():
            if part.get_content_maintype() == "text":
                for url in re.findall(r"https?://[^\s\"'<>]+", part.get_content()):
                    url = url.replace("&amp;", "&")
                    if url not in found:
                        found.append(url)
        return found


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free loopback port; the stack's ``SMTP_HOST``/``SMTP_PORT``."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        unavailable("aiosmtpd is not installed (test extras)")
    box = Mailbox(host="127.0.0.1", port=free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            box.add(envelope.original_content or envelope.content)
            return "250 OK"

    controller = Controller(Handler(), hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# --- PostgreSQL and Redis for the session --------------------------------------------------------


@pytest.fixture(scope="session")
def _browser_database() -> Iterator[str]:
    """The site's PostgreSQL database, for the whole session (migrated by ``site``)."""
    with scratch_postgres_database("tradefleet_browser") as url:
        yield url


@pytest.fixture(scope="session")
def _browser_redis() -> Iterator[str]:
    """The site's Redis: the test Redis server, one database below ``TEST_REDIS_URL``'s (14 by default).
    Not the same database: the site's worker and beat live for the whole session, and on the end-to-end
    tests' database they would take those tests' tasks (a catalog refresh run against the wrong
    database) and feed them their own."""
    import redis

    base = make_url(os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL)
    db = int(base.database or 0)
    url = base.set(database=str(db - 1 if db > 0 else 1)).render_as_string(hide_password=False)
    conn = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        conn.ping()
    except redis.RedisError as exc:
        conn.close()
        unavailable(f"Redis unreachable at {url}: {exc}")
    conn.flushdb()
    try:
        yield url
    finally:
        conn.flushdb()
        conn.close()


# --- nginx ---------------------------------------------------------------------------------------


def start_nginx(stack: Stack, conf: Path) -> None:
    """``nginx -t`` the config (raises with nginx's message), then run it as a non-daemon child of
    ``stack`` named ``nginx``."""
    stack.spawn("nginx", *nginx_command(conf))


# --- the whole site --------------------------------------------------------------------------------


@dataclass
class Site:
    """The running platform behind nginx (see the module docstring)."""

    url: str
    api_url: str
    database_url: str
    redis_url: str
    logs: Path
    stack: Stack

    def api(self, token: str | None = None) -> httpx.Client:
        """An ``httpx.Client`` on ``<nginx>/api/v1`` (bearer ``token`` if given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=15, headers=headers)

    def create_user(self, email: str | None = None, password: str | None = None, role: str = "trader",
                    verified: bool = True) -> tuple[str, str]:
        """A user written straight into the database (through ``services.users.create_user``);
        returns ``(email, password)``."""
        from sqlmodel import Session

        from tradefleet.models import Role, UserCreate
        from tradefleet.services.users import create_user

        email = email or f"user-{secrets.token_hex(5)}@example.com"
        password = password or f"pw-{secrets.token_urlsafe(12)}"
        engine = create_engine(make_url(self.database_url).set(drivername="postgresql+psycopg"),
                               poolclass=NullPool)
        try:
            with Session(engine) as session:
                create_user(session=session, user_in=UserCreate(email=email, password=password),
                            role=Role(role), is_verified=verified)
        finally:
            engine.dispose()
        return email, password

    def login_api(self, email: str, password: str) -> httpx.Client:
        """An API client logged in through ``POST /auth/login`` (no 2FA)."""
        reply = self.api().post("/auth/login", data={"username": email, "password": password})
        assert reply.status_code == 200, reply.text
        return self.api(reply.json()["access_token"])

    def wait_market_catalog(self, timeout_s: float = 60) -> None:
        """Until the worker has loaded binance's market catalog (runs can be created from then on)."""
        from sqlmodel import Session

        engine = create_engine(make_url(self.database_url).set(drivername="postgresql+psycopg"),
                               poolclass=NullPool)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                self.stack.check_alive()
                with Session(engine) as session:
                    if session.execute(text("SELECT count(*) FROM exchange_market")).scalar():
                        return
                time.sleep(0.3)
        finally:
            engine.dispose()
        raise AssertionError(f"the market catalog was not loaded in {timeout_s:g} s")


@pytest.fixture(scope="session")
def site(_browser_database: str, _browser_redis: str, mailbox: Mailbox,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The platform's real processes and nginx, for the whole session."""
    nginx_binary()
    if not (FRONTEND_DIR / "index.html").is_file():
        pytest.fail(f"{FRONTEND_DIR}/index.html is missing: nothing for nginx to serve", pytrace=False)
    tmp = tmp_path_factory.mktemp("browser-site")
    logs = tmp / "logs"
    sim_port, api_port, web_port = free_port(), free_port(), free_port()
    site_url = f"http://127.0.0.1:{web_port}"
    env = stack_env(database_url=_browser_database, redis_url=_browser_redis, sim_port=sim_port,
                    SCHEDULE_INTERVAL_S="0.5", FRONTEND_BASE_URL=site_url,
                    SMTP_HOST=mailbox.host, SMTP_PORT=str(mailbox.port), SMTP_TLS="false", SMTP_SSL="false",
                    EMAILS_FROM_EMAIL="tradefleet@example.com",
                    # Every browser test signs up and logs in from 127.0.0.1: the production limits
                    # (10 logins, 5 sign-ups a minute per IP) would answer 429 mid-suite. The limits
                    # themselves are tested in tests/security/test_ratelimit_lockout.py.
                    RATE_LIMIT_LOGIN="1000/minute", RATE_LIMIT_REGISTER="1000/minute",
                    # The vault: keys are sealed by the API and opened only by the workers (the Stack blanks
                    # the private keys in every other process's environment).
                    **vault_settings())
    stack = Stack(env=env, log_dir=logs)
    try:
        migrated = subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT,
                                  capture_output=True, text=True)
        assert migrated.returncode == 0, migrated.stderr
        stack.simulator(port=sim_port, speed=120)
        stack.workers(concurrency=2)  # the tick worker and the backtest worker
        stack.beat(schedule_file=tmp / "beat-schedule")
        api_url = stack.api(port=api_port)
        conf = render_nginx_conf(tmp / "nginx", port=web_port, api_port=api_port, root=FRONTEND_DIR, logs=logs)
        start_nginx(stack, conf)
        stack.wait_http(f"{site_url}/api/v1/health")
        yield Site(url=site_url, api_url=api_url, database_url=_browser_database, redis_url=_browser_redis,
                   logs=logs, stack=stack)
    finally:
        stack.stop()


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright (sync API). Per module, not per session: the sync
    API keeps an asyncio loop running in this thread while it is started, and later tests that run their
    own loop (anyio, asyncio.run) would fail with "Already running asyncio in this thread"."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is not installed (make system-deps installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (test extras)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser_errors() -> list[str]:
    """Console errors and page errors seen by ``page`` (and pages of ``new_page``) during the test."""
    return []


def _watch(page: Any, errors: list[str]) -> Any:
    def on_console(message: Any) -> None:
        if message.type == "error":
            location = message.location or {}
            errors.append(f"console error: {message.text} ({location.get('url', '')}:{location.get('lineNumber', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    return page


@pytest.fixture
def context(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh browser context (cookies, storage) at 1440x900 with ``base_url`` = the nginx URL."""
    ctx = browser.new_context(base_url=site.url, viewport=DESKTOP)
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any, browser_errors: list[str]) -> Iterator[Any]:
    """A page; the test fails if the console shows an error or the page throws."""
    pg = _watch(context.new_page(), browser_errors)
    yield pg
    if browser_errors:
        pytest.fail("the browser reported errors:\n" + "\n".join(browser_errors), pytrace=False)


@pytest.fixture
def new_page(browser: Any, site: Site, browser_errors: list[str]) -> Iterator[Callable[[], Any]]:
    """``new_page() -> Page`` in its own context (a second user); watched like ``page``."""
    contexts: list[Any] = []

    def make() -> Any:
        ctx = browser.new_context(base_url=site.url, viewport=DESKTOP)
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        return _watch(ctx.new_page(), browser_errors)

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """``screenshot(page, name, full_page=True) -> Path``: ``test-artifacts/screenshots/<name>.png``."""
    def take(page: Any, name: str, full_page: bool = True) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f"screenshot name {name!r}: letters, digits, '.', '_' and '-' only")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


class Viewport:
    """Viewport helpers: the two widths the pages must work at."""

    MOBILE = MOBILE
    DESKTOP = DESKTOP

    @staticmethod
    def mobile(page: Any) -> None:
        page.set_viewport_size(MOBILE)

    @staticmethod
    def desktop(page: Any) -> None:
        page.set_viewport_size(DESKTOP)

    @staticmethod
    def assert_fits(page: Any) -> None:
        """No horizontal scrolling: the document is not wider than the viewport."""
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"page is {widths[0]} px wide in a {widths[1]} px viewport"


@pytest.fixture
def viewport() -> Viewport:
    return Viewport()


_AXE_SOURCE: str | None = None


@pytest.fixture
def axe() -> Callable[..., list[dict]]:
    """``axe(page, context=None, disable=()) -> violations``; fails on serious or critical ones.

    axe-core is evaluated through the DevTools protocol (``page.evaluate``), which the page's CSP does not
    govern, so the pages are tested under their real CSP. ``disable`` lists axe rule ids to skip
    (say why in the test)."""
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        _AXE_SOURCE = AXE_JS.read_text(encoding="utf-8")

    def run(page: Any, context: str | None = None, disable: tuple[str, ...] | list[str] = ()) -> list[dict]:
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(_AXE_SOURCE + "\n;0")  # an expression evaluated by DevTools, not a <script>
        options = {"rules": {rule: {"enabled": False} for rule in disable},
                   "resultTypes": ["violations"]}
        result = page.evaluate(
            "async ([context, options]) => { const r = await window.axe.run(context || document, options);"
            " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,"
            " nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary}))})); }",
            [context, options])
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        if bad:
            lines = [f"{v['impact']}: {v['id']} - {v['help']} ({v['helpUrl']})\n    "
                     + "\n    ".join(f"{n['target']}: {n['summary']}" for n in v["nodes"][:5]) for v in bad]
            pytest.fail(f"axe-core: {len(bad)} serious/critical violation(s) on {page.url}:\n" + "\n".join(lines),
                        pytrace=False)
        return result

    return run
