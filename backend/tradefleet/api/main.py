"""The FastAPI application: ``create_app()``, and ``app`` for ``uvicorn tradefleet.api.main:app``.

Routers live in ``tradefleet.api.routes.<name>`` and export ``router``. Every router is mounted behind
authentication unless it is listed in ``PUBLIC_ROUTERS`` (authenticated by default, as in Netflix/dispatch):
a new route cannot be left open by forgetting a dependency.
"""

from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
import logging
from types import ModuleType

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from tradefleet.api.deps import API_PREFIX, AUTHENTICATED
from tradefleet.api.docs import install_docs
from tradefleet.api.errors import ERROR_RESPONSES, document_error_format, install_error_handlers
from tradefleet.api.exposure import install_exposure_checks
from tradefleet.api.middleware import install_middleware
from tradefleet.api.route_index import FallbackApp, RouteIndex
from tradefleet.api.validation import document_input_rules
from tradefleet.config import REPO_ROOT, get_settings
from tradefleet.stream_slots import install_session_watch

logger = logging.getLogger(__name__)

ROUTES_PACKAGE = "tradefleet.api.routes"

# Authenticated routers (the default): every route in them requires a valid bearer token of an active
# user. A name without a module in ``tradefleet.api.routes`` is skipped (``_import_routes``).
ROUTERS = [
    "users",
    "runs",
    "strategies",
    "markets",  # GET /markets: the market catalog the run and backtest forms offer
    "strategy_uploads",  # after "strategies": GET /strategies/{name}/versions is matched first
    "backtests",
    "admin",  # every route of it also requires an admin (403 otherwise)
    "admin_audit",  # GET /admin/audit
    "admin_users",  # GET /admin/users, PATCH /admin/users/{id}
    "exchange_accounts",  # the user's exchange API keys
    "admin_runs",  # every user's runs, stop/kill, the global trading halt (admins only)
    "events",  # POST /events/ticket
    "run_charts",  # GET /runs/{id}/candles, GET /backtests/{id}/candles
    "admin_system",  # GET /admin/system, PATCH /admin/strategies/{name} (admins only)
    "admin_strategy_versions",  # the review of uploaded strategy versions (admins only)
    "trading",  # GET /trading/halt: the global halt as every trader's pages show it
]

# Public routers, each for a reason:
#   auth   - register and login are how a client obtains a token;
#   health - probed by Docker, Nginx and monitors, which hold no credentials.
# (Payment and alert webhooks will go here too: they authenticate by signature, not by token.)
PUBLIC_ROUTERS = [
    "auth",
    "health",
    # GET /events/stream - EventSource cannot send a bearer token; it is authorised by a
    # single-use ticket from the authenticated POST /events/ticket instead (routes/event_stream.py).
    "event_stream",
]

FRONTEND_DIR = REPO_ROOT / "frontend"


def _import_routes(name: str) -> ModuleType | None:
    """``tradefleet.api.routes.<name>``, or None when that module does not exist.

    Any other import failure (a missing dependency inside the module, a syntax error) is raised: a
    broken router must stop the app, not silently disappear.
    """
    module_name = f"{ROUTES_PACKAGE}.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            logger.debug("router module %s not present, skipped", module_name)
            return None
        raise


def _router_dependencies(name: str, router: APIRouter) -> list:
    """Dependencies main.py adds to a router: rate limits on the auth routes, and the audit
    record of every non-GET request on any router under ``/admin``."""
    from tradefleet.api.rate_limits import limit_auth, limit_user_routes
    from tradefleet.api.routes.admin_audit import audit_admin_request

    extra = []
    if name == "auth":
        extra.append(Depends(limit_auth))
    if name == "users":
        extra.append(Depends(limit_user_routes))
    if router.prefix.startswith("/admin"):
        extra.append(Depends(audit_admin_request))
    return extra


def _collect(names: list[str], into: APIRouter) -> None:
    for name in names:
        module = _import_routes(name)
        if module is not None:
            into.include_router(module.router, dependencies=_router_dependencies(name, module.router),
                                responses=ERROR_RESPONSES)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    # Say at start-up whether strategy code can be confined here (GET /health and /admin/system say it
    # afterwards); the probe starts one sandbox, off the event loop.
    from starlette.concurrency import run_in_threadpool

    from tradefleet.sandbox import sandbox_status

    status = await run_in_threadpool(sandbox_status)
    if status.available:
        logging.getLogger("tradefleet.sandbox").info("strategy sandbox: %s", status.mode)
    else:
        logging.getLogger("tradefleet.sandbox").warning(
            "strategy sandbox unavailable: %s; %s", status.reason,
            "bundled strategies run unsandboxed (STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED)"
            if status.mode == "unsandboxed" else "no strategy code will run")
    # Start the runners of STRATEGIES_DIR now, so the first request that lists or validates a strategy
    # does not wait for them.
    from tradefleet.sandbox.registry import get_registry

    await run_in_threadpool(get_registry)
    yield


def create_app() -> FastAPI:
    """Build the application from the current settings: API routers under ``/api/v1``, the error format
    of :mod:`tradefleet.api.errors`, and the frontend at ``/`` when ``frontend/`` exists."""
    settings = get_settings()
    app = FastAPI(
        title=settings.PROJECT_NAME,
        # The document and the page are served by api/docs.py (under /api/, which the production Nginx
        # proxies; the page loads the vendored Swagger UI), as API_DOCS allows.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
    )
    install_error_handlers(app)
    # Filled in once every route is included (below): methods per API path, for 405s and field names.
    index = RouteIndex(API_PREFIX)
    app.state.route_index = index
    # CORS, the input guard, security headers, body limit, 500s
    install_middleware(app, api_prefix=API_PREFIX, route_index=index)
    # Outermost: no private vault key in production; no example secrets beyond loopback.
    install_exposure_checks(app, settings)
    document_error_format(app, document_input_rules)  # the input guard's character rules, as patterns
    install_docs(app, settings)
    # A commit that changes a user's token_version tells their open event streams to end.
    install_session_watch()

    # Per-user in-flight slot, then the user, then the user's rate limits (api/deps.AUTHENTICATED).
    authenticated = APIRouter(dependencies=AUTHENTICATED)
    _collect(ROUTERS, authenticated)
    public = APIRouter()
    _collect(PUBLIC_ROUTERS, public)
    app.include_router(public, prefix=API_PREFIX)
    app.include_router(authenticated, prefix=API_PREFIX)

    # Last: a mount at "/" matches every path, so it must come after the API routes. It answers what no
    # route matched: API paths with the API's own 404 / 405 (never a static file), others from frontend/.
    index.build(app.router.routes)
    static = StaticFiles(directory=FRONTEND_DIR, html=True) if FRONTEND_DIR.is_dir() else None
    app.mount("/", FallbackApp(index, static), name="frontend")
    return app


app = create_app()
