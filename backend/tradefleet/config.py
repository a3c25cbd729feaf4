"""One ``Settings`` object for the whole platform, read from the environment and ``.env``.

Every setting is listed, with a comment, in ``.env.example`` at the repository root.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (holds ``strategies/``, ``data/``, ``frontend/``)."""

EXAMPLE_SECRET = "changethis"


class Settings(BaseSettings):
    """Platform settings. Environment variables win over ``.env``; names are case-insensitive."""

    model_config = SettingsConfigDict(
        env_file=(".env", str(REPO_ROOT / ".env")), env_file_encoding="utf-8", extra="ignore",
        # A setting that fails validation may be a secret (a mistyped API_ENCRYPTION_KEYS): the error
        # names the setting, never its value.
        hide_input_in_errors=True,
    )

    ENVIRONMENT: Literal["local", "test", "production"] = "local"
    PROJECT_NAME: str = "Tradefleet"
    API_DOCS: Literal["public", "admins", "off"] | None = None
    """Who may read the OpenAPI document behind ``/api/v1/docs``: ``public``, ``admins`` (an admin's bearer
    token) or ``off`` (404). Unset: ``admins`` in production, ``public`` elsewhere (``tradefleet.api.docs``)."""

    # --- storage ----------------------------------------------------------------------------------
    DATABASE_URL: str = f"sqlite:///{REPO_ROOT / 'var' / 'tradefleet.db'}"
    REDIS_URL: str | None = None
    DB_POOL_SIZE: int = Field(default=10, ge=1, le=1000)
    """Connections each process keeps open to the database (SQLAlchemy ``QueuePool``); see the connection
    budget in DEPLOYMENT.md."""
    DB_MAX_OVERFLOW: int = Field(default=5, ge=0, le=1000)
    """Connections a process may open beyond ``DB_POOL_SIZE`` under load (closed again when returned)."""
    DB_POOL_TIMEOUT_S: float = Field(default=5.0, gt=0, le=300)
    """Seconds a request waits for a free connection; past it the API answers 503 with ``Retry-After``."""
    DB_SQLITE_BUSY_TIMEOUT_S: float = Field(default=30.0, ge=0, le=3600)
    """SQLite only: seconds a statement waits for another process's write lock before failing (503 in the API)."""
    CELERY_BROKER_URL: str | None = None
    """Defaults to REDIS_URL, else kombu's SQLAlchemy transport on a SQLite file beside the database."""

    # --- security: tokens, HTTP hardening, rate limits, lockout -----------------------------------
    JWT_SECRET_KEY: SecretStr = SecretStr(EXAMPLE_SECRET)
    """Signs access tokens. ``make run`` generates one into ``var/`` (``tradefleet dev``)."""
    JWT_SECRET_KEY_FILE: Path | None = None
    """A file holding ``JWT_SECRET_KEY`` (systemd credentials, Docker secrets); not both."""
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=15, ge=1)
    """Access token lifetime; clients renew with a refresh token."""
    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=14, ge=1)
    MFA_TOKEN_EXPIRE_MINUTES: int = Field(default=5, ge=1)
    """How long the ``mfa_token`` of a password login waits for its 2FA code."""
    ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins (``https://app.example.com``) allowed to call the API from a browser (CORS). Empty: none
    (the bundled frontend is served from the API's own origin and needs no CORS)."""
    TRUSTED_PROXIES: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Peers (IP addresses or networks) whose ``X-Forwarded-For`` is believed for the client IP. Empty
    (the default): none, the socket peer is the client. Behind the host's Nginx: ``127.0.0.1``."""
    MAX_REQUEST_BYTES: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted; larger ones are refused with 413 while they stream in."""
    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_LOGIN: str = "10/minute"
    """Per IP and per account (e-mail), ``limits`` notation: ``"10/minute;100/hour"``."""
    RATE_LIMIT_REGISTER: str = "5/minute;50/day"
    RATE_LIMIT_PASSWORD_RESET: str = "5/minute;20/hour"
    RATE_LIMIT_2FA: str = "10/minute"
    RATE_LIMIT_WEBHOOK: str = "120/minute"
    RATE_LIMIT_USER: str = "600/minute"
    """Per signed-in trader, on every authenticated route (``limits`` notation)."""
    RATE_LIMIT_ADMIN: str = "1200/minute"
    """Per signed-in admin, on every authenticated route, instead of ``RATE_LIMIT_USER``."""
    RATE_LIMIT_USER_HEAVY: str = "60/minute"
    """Per signed-in user, on the heavy routes (chart candles, equity curves, backtest results), in
    addition to the limit above."""
    USER_MAX_IN_FLIGHT: int = Field(default=8, ge=1, le=10_000)
    """Requests one user may have in progress at once in one API process; more answer 429."""
    USER_MAX_IN_FLIGHT_HEAVY: int = Field(default=2, ge=1, le=10_000)
    """Heavy requests one user may have in progress at once in one API process; more answer 429."""
    LOCKOUT_THRESHOLD: int = Field(default=5, ge=1)
    """Consecutive failed logins of one account from one client IP that lock it for that IP."""
    LOCKOUT_BASE_S: int = Field(default=60, ge=1)
    """First (account, IP) lock, seconds; every further failure while over the threshold doubles it."""
    LOCKOUT_MAX_S: int = Field(default=3600, ge=1)
    """Longest (account, IP) lock, seconds."""
    LOCKOUT_ACCOUNT_THRESHOLD: int = Field(default=20, ge=1)
    """Failed logins of one account from any IPs that lock its sign-in from everywhere (never the
    password reset, which lifts every lock)."""
    LOCKOUT_ACCOUNT_BASE_S: int = Field(default=300, ge=1)
    """First account-wide lock, seconds; every further failure doubles it."""
    LOCKOUT_ACCOUNT_MAX_S: int = Field(default=3600, ge=1)
    """Longest account-wide lock, seconds."""
    LOCKOUT_NOTICE_INTERVAL_S: int = Field(default=900, ge=1)
    """At most one e-mail per account per this many seconds about per-IP locks (the account-wide lock
    always mails)."""

    # --- key custody: exchange keys vault, encryption keys ----------------------------------------
    VAULT_PUBLIC_KEYS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Public keys of the vault (``tradefleet keys generate``), newest first: exchange keys are sealed
    to the first (``tradefleet.security.vault``). Every process may hold them. Comma-separated."""
    VAULT_PUBLIC_KEYS_FILE: Path | None = None
    """A file holding ``VAULT_PUBLIC_KEYS`` (one key a line, newest first); not both."""
    VAULT_PRIVATE_KEYS: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Private keys of the vault, any order: only in the environment of the Celery workers that
    check keys and trade live, never the API's or beat's (the API refuses to start with one in
    production). ``keys rotate`` needs the old ones. Comma-separated."""
    VAULT_PRIVATE_KEYS_FILE: Path | None = None
    """A file holding ``VAULT_PRIVATE_KEYS`` (one key a line); not both."""
    API_ENCRYPTION_KEYS: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Fernet keys of rows encrypted symmetrically (not sealed to a vault public key): read only by
    ``tradefleet keys migrate-sealed`` (and ``keys rotate``), which re-seal such rows to the
    public key, and to open two-factor secrets encrypted under them until then. Leave it out of
    every service's environment (the API refuses it in production). Comma-separated."""
    TOTP_ENCRYPTION_KEY: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Fernet key that encrypts stored TOTP secrets (the API needs it for every 2FA login); several,
    comma-separated and newest first, while rotating (``tradefleet keys rotate``). Required in
    production; unset elsewhere: a key generated once into ``var/dev-totp-encryption.key``."""
    TOTP_ENCRYPTION_KEY_FILE: Path | None = None
    """A file holding ``TOTP_ENCRYPTION_KEY`` (one key a line, newest first); not both."""

    # --- accounts and e-mail ----------------------------------------------------------------------
    FRONTEND_BASE_URL: str = "http://127.0.0.1:8000"
    """Base of the links in e-mails: ``{FRONTEND_BASE_URL}/verify.html?token=...``, ``/reset.html?token=...``."""
    EMAIL_VERIFY_TOKEN_EXPIRE_HOURS: int = Field(default=48, ge=1)
    PASSWORD_RESET_TOKEN_EXPIRE_MINUTES: int = Field(default=60, ge=1)
    REQUIRE_VERIFIED_EMAIL_FOR_LIVE: bool = True
    """A run may go live only once its owner's e-mail is verified (enforced by the live-trading code)."""
    REQUIRE_2FA_FOR_ADMINS: bool = False
    """When true, an admin without 2FA gets 403 on every admin route until enrolled (set it in production)."""
    SMTP_HOST: str | None = None
    """Unset: e-mails are written to the log instead of sent."""
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USER: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_TLS: bool = True
    """STARTTLS after connecting (port 587); mutually exclusive with ``SMTP_SSL``."""
    SMTP_SSL: bool = False
    """TLS from the first byte (port 465)."""
    SMTP_TIMEOUT_S: float = Field(default=10.0, gt=0)
    EMAILS_FROM_EMAIL: str | None = None
    """Sender address; unset: ``tradefleet@localhost`` (fine for the log, refused in production)."""
    EMAILS_FROM_NAME: str = "Tradefleet"

    # --- strategies and market data ---------------------------------------------------------------
    STRATEGIES_DIR: Path = REPO_ROOT / "strategies"
    STRATEGY_UPLOAD_MAX_BYTES: int = Field(default=262_144, ge=1, le=16_777_216)
    """The largest strategy file an author may upload (``POST /strategies/uploads``), bytes."""
    STRATEGY_UPLOAD_MAX_VERSIONS: int = Field(default=50, ge=1)
    """Uploaded versions one author may have (every status counts)."""
    STRATEGY_VALIDATION_TIMEOUT_S: float = Field(default=120.0, gt=0)
    """Wall time the validation of one upload (load, check suite, short backtest) may take."""
    EXCHANGE_API_URLS: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """Per exchange id, a base URL that replaces the scheme and host of every API URL ccxt knows
    for it (``{"binance": "http://127.0.0.1:8100"}`` points ccxt's binance at the simulator).
    In the environment: JSON, or ``binance=http://127.0.0.1:8100,kraken=...``."""
    EXCHANGES_ENABLED: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["binance"])
    """ccxt exchange ids that runs may use."""
    MARKET_CACHE_TTL_S: int = Field(default=600, ge=1)
    CCXT_TIMEOUT_MS: int = Field(default=10_000, ge=100)

    # --- strategy sandbox -------------------------------------------------------------------------
    STRATEGY_SANDBOX: Literal["bwrap", "off"] = "bwrap"
    """``bwrap``: strategy code runs in runner processes confined by bubblewrap, seccomp and resource
    limits. ``off``: no sandbox is attempted (uploads are refused; bundled strategies run only with
    ``STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED``)."""
    STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED: bool = False
    """When the sandbox is unavailable, run the files of ``STRATEGIES_DIR`` (code the server owner put
    there) in plain runner processes: still out of process, with resource limits and, where the binding
    exists, the seccomp filter, but without namespaces. Uploaded code never runs unsandboxed."""
    STRATEGY_SANDBOX_PACKAGES: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["numpy", "pandas", "dateutil", "six", "pytz", "tzdata"])
    """Top-level Python packages bound read-only into the sandbox (those installed; the rest skipped)."""
    STRATEGY_RUNNER_MEMORY_MB: int = Field(default=1536, ge=256)
    """Address-space limit of one runner process (numpy and pandas take about 400 MB of it)."""
    STRATEGY_RUNNER_CPU_S: int = Field(default=3600, ge=10)
    """CPU seconds one runner process may use in its life; it is then killed and started again."""
    STRATEGY_RUNNER_SCRATCH_MB: int = Field(default=16, ge=1)
    """Size of the runner's private ``/tmp`` and the largest file it may write."""
    STRATEGY_RUNNER_OPEN_FILES: int = Field(default=64, ge=16)
    STRATEGY_RUNNER_REPLY_MB: int = Field(default=64, ge=1)
    """The largest reply the parent reads from a runner; a larger one kills the runner."""
    STRATEGY_RUNNERS_PER_PROCESS: int = Field(default=16, ge=1)
    """Runner processes one platform process keeps alive (least recently used ones are stopped)."""
    STRATEGY_RUNNER_START_TIMEOUT_S: float = Field(default=30.0, gt=0)
    """Time a new runner has to import its libraries and load the file."""

    # --- fleet engine -----------------------------------------------------------------------------
    SCHEDULE_INTERVAL_S: float = Field(default=1.0, gt=0)
    """How often beat fires ``engine.schedule``."""
    ENGINE_BATCH_SIZE: int = Field(default=500, ge=1)
    """Runs of one market evaluated by one ``evaluate_market`` task."""
    ENGINE_MAX_CATCHUP_CANDLES: int = Field(default=60, ge=1)
    """A run further behind than this skips ahead (with an event) instead of replaying every candle."""
    STRATEGY_TIMEOUT_S: float = Field(default=5.0, gt=0)
    """Wall time one call into strategy code may take before its runner is killed and the run paused."""
    STRATEGY_BACKTEST_TIMEOUT_S: float = Field(default=120.0, gt=0)
    """Wall time one call into strategy code may take in a backtest (``signals()`` runs once over the
    whole history there)."""

    # --- live trading: order manager and risk guard -----------------------------------------------
    MAX_OPEN_EXPOSURE_QUOTE: float | None = Field(default=None, gt=0)
    """Per user: quote value of open live positions plus pending live buys, beyond which a new buy is
    refused. Empty: no cap."""
    MAX_DAILY_LOSS_QUOTE: float | None = Field(default=None, gt=0)
    """Per user: realised loss of live trades closed today (UTC), quote currency, at which new buys are
    refused until the next UTC day. Empty: no cap."""
    LIVE_SEND_ATTEMPTS: int = Field(default=4, ge=1, le=10)
    """Tries per order request on network errors and rate limits (exponential backoff in between)."""
    LIVE_BACKOFF_S: float = Field(default=0.5, ge=0)
    """First backoff between tries, seconds; doubled each time (capped at 8 s)."""
    RECONCILE_INTERVAL_S: float = Field(default=30.0, gt=0)
    """How often beat reconciles every live order that is not final with its exchange."""

    # --- backtests: worker and retention ----------------------------------------------------------
    BACKTEST_WORKER_CONCURRENCY: int = Field(default=1, ge=1, le=64)
    """Pool processes of the backtest worker (queue ``backtests``) that ``tradefleet dev`` starts."""
    BACKTEST_WORKER_NICE: int = Field(default=10, ge=0, le=19)
    """CPU niceness of the backtest worker that ``tradefleet dev`` starts (0 = normal priority)."""
    BACKTEST_RETENTION_DAYS: int = Field(default=90, ge=1)
    """Finished (``done``/``failed``) backtests older than this are deleted by the hourly ``backtest.expire``."""

    # --- per-user limits --------------------------------------------------------------------------
    MAX_RUNS_PER_USER: int = Field(default=50, ge=1)
    """Runs of one user that are not stopped (created, running, paused); creating or starting one more is
    a 409 naming the limit. Counted under the owner's lock (``services/quotas``), so racing cannot pass it."""
    MAX_EXCHANGE_ACCOUNTS_PER_USER: int = Field(default=50, ge=1)
    """Exchange accounts (stored keys) of one user; one more is a 409 naming the limit (counted under lock)."""
    RUN_MAX_STOPPED_PER_USER: int = Field(default=500, ge=1)
    """Stopped runs kept per user: beyond it, the oldest stopped ones are deleted by beat
    (``runs.prune_stopped``, hourly) with their events, snapshots, orders and trades. A run with an open
    position or an order not final is never deleted."""
    RUN_RETENTION_DAYS: int = Field(default=180, ge=1)
    """Stopped runs whose ``stopped_at`` is older than this are deleted by the same task."""
    BACKTEST_MAX_ACTIVE_PER_USER: int = Field(default=3, ge=1)
    """Backtests one user may have queued or running at once; more answer 429 (``Retry-After``)."""
    BACKTEST_ACTIVE_RETRY_AFTER_S: int = Field(default=30, ge=1)
    """``Retry-After`` (seconds) of the 429 over ``BACKTEST_MAX_ACTIVE_PER_USER``."""
    BACKTEST_DOWNLOAD_CANDLES_PER_DAY: int = Field(default=1_000_000, ge=0)
    """Candles of ranges not stored that one user's backtests may download per UTC day (counted when
    the backtest is requested); over it a 429 until the next UTC midnight. 0: stored candles only."""
    BACKTEST_MAX_STORED_PER_USER: int = Field(default=200, ge=1)
    """Backtest rows one user may keep (any status); more answer 409 until some are deleted or expire."""

    # --- live updates: the browser's event stream -------------------------------------------------
    EVENTS_TICKET_TTL_S: int = Field(default=60, ge=5, le=3600)
    """How long a ticket of ``POST /api/v1/events/ticket`` may wait before opening its stream (single use)."""
    EVENTS_HEARTBEAT_S: float = Field(default=15.0, gt=0)
    """Seconds between the stream's heartbeat comments (keeps proxies from closing an idle stream)."""
    EVENTS_RETENTION_S: int = Field(default=3600, ge=60)
    """How long a user's events are kept for a reconnecting stream to resume from (Redis stream or table)."""
    EVENTS_STREAM_MAXLEN: int = Field(default=2000, ge=10)
    """At most this many recent events per user are kept in Redis for resuming (approximate cap)."""
    EVENTS_POLL_S: float = Field(default=1.0, gt=0)
    """Without Redis: how often a stream reads new rows of ``live_event``."""
    STREAM_MAX_PER_USER: int = Field(default=10, ge=1, le=1000)
    """Open event streams one user may hold at once; the next is a 429 naming this setting (counted in
    Redis across API processes; a closed stream frees its slot at once, a dead one after its lease)."""
    EVENTS_SESSION_CHECK_S: float = Field(default=5.0, gt=0, le=300)
    """How often an open stream checks that its user is active with the ticket's ``token_version`` (a
    change made through the API also ends it at once) and renews its slot's lease."""

    # --- demo (make run) --------------------------------------------------------------------------
    DEMO_EMAIL: str = "demo@example.com"
    DEMO_PASSWORD: SecretStr = SecretStr("demo-password-123")

    @field_validator("EXCHANGE_API_URLS", mode="before")
    @classmethod
    def _parse_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return {}
            if value.startswith("{"):
                return json.loads(value)
            pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
            return {k.strip(): v.strip() for k, v in pairs}
        return value

    @field_validator("MAX_OPEN_EXPOSURE_QUOTE", "MAX_DAILY_LOSS_QUOTE", "API_DOCS", "SMTP_PASSWORD", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # `.env.example` leaves these empty: no cap, the environment's default docs access, no SMTP
        # password (unset, not an example value: production still refuses it as missing).
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("API_ENCRYPTION_KEYS", "TOTP_ENCRYPTION_KEY", mode="after")
    @classmethod
    def _check_fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        # After SecretStr wrapped them, so a validation error shows '**********', never a key; the
        # message names the position only.
        return _fernet_keys(value)

    @field_validator("VAULT_PUBLIC_KEYS", mode="after")
    @classmethod
    def _check_public_keys(cls, value: list[str]) -> list[str]:
        return _vault_keys(value, private=False)

    @field_validator("VAULT_PRIVATE_KEYS", mode="after")
    @classmethod
    def _check_private_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        return _vault_keys(value, private=True)

    @field_validator("JWT_SECRET_KEY_FILE", "TOTP_ENCRYPTION_KEY_FILE", "VAULT_PUBLIC_KEYS_FILE",
                     "VAULT_PRIVATE_KEYS_FILE", mode="before")
    @classmethod
    def _empty_path_is_none(cls, value: Any) -> Any:
        # An empty variable unsets: process launchers blank out files a process must not read.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("STRATEGIES_DIR", mode="after")
    @classmethod
    def _anchor_dir(cls, value: Path) -> Path:
        # Relative paths are relative to the repository, whatever the process's working directory.
        return value if value.is_absolute() else REPO_ROOT / value

    @field_validator("DATABASE_URL", mode="after")
    @classmethod
    def _anchor_sqlite(cls, value: str) -> str:
        prefix = "sqlite:///"
        if value.startswith(prefix) and not value.startswith(prefix + "/") and value != "sqlite://":
            path = value[len(prefix):]
            if path and path != ":memory:":
                return prefix + str(REPO_ROOT / path)
        return value

    @field_validator("EXCHANGES_ENABLED", "ALLOWED_ORIGINS", "TRUSTED_PROXIES", "API_ENCRYPTION_KEYS",
                     "TOTP_ENCRYPTION_KEY", "VAULT_PUBLIC_KEYS", "VAULT_PRIVATE_KEYS", "STRATEGY_SANDBOX_PACKAGES",
                     mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @property
    def broker_url(self) -> str:
        """Celery broker: CELERY_BROKER_URL, else REDIS_URL, else SQLAlchemy transport on SQLite."""
        if self.CELERY_BROKER_URL:
            return self.CELERY_BROKER_URL
        if self.REDIS_URL:
            return self.REDIS_URL
        return f"sqla+sqlite:///{REPO_ROOT / 'var' / 'celery-broker.db'}"

    @model_validator(mode="after")
    def _refuse_example_secrets(self) -> "Settings":
        _read_secret_files(self)
        # In production a default secret would let anyone forge tokens, read stored keys or reach the
        # database: refuse to start and name every setting that must be set.
        if self.ENVIRONMENT == "production":
            problems = production_problems(self)
            if problems:
                raise ValueError(
                    "refusing to start with ENVIRONMENT=production: " + "; ".join(problems)
                )
        return self


SECRET_FILES = {
    "JWT_SECRET_KEY_FILE": "JWT_SECRET_KEY",
    "TOTP_ENCRYPTION_KEY_FILE": "TOTP_ENCRYPTION_KEY",
    "VAULT_PUBLIC_KEYS_FILE": "VAULT_PUBLIC_KEYS",
    "VAULT_PRIVATE_KEYS_FILE": "VAULT_PRIVATE_KEYS",
}
"""``NAME_FILE`` setting -> the setting ``NAME`` it holds."""

PUBLIC_KEY_PREFIX = "vault-pk-"
PRIVATE_KEY_PREFIX = "vault-sk-"


def _fernet_keys(value: list[SecretStr]) -> list[SecretStr]:
    """``value`` unchanged; ``ValueError`` naming the position of the first key that is not a Fernet key."""
    from cryptography.fernet import Fernet

    for position, key in enumerate(value):
        try:
            Fernet(key.get_secret_value())
        except (ValueError, TypeError):
            raise ValueError(f"key {position + 1} is not a Fernet key (32 url-safe base64-encoded "
                             "bytes)") from None
    return value


def _vault_keys(value: list, *, private: bool) -> list:
    """Vault keys (``vault-pk-`` or ``vault-sk-`` and 32 bytes of url-safe base64) unchanged;
    ``ValueError`` naming the position only. A private key given as a public one is refused
    with its own message: it would hand the vault to every process."""
    import base64
    import binascii

    prefix, other = (PRIVATE_KEY_PREFIX, PUBLIC_KEY_PREFIX) if private else (PUBLIC_KEY_PREFIX, PRIVATE_KEY_PREFIX)
    for position, key in enumerate(value):
        text = key.get_secret_value() if isinstance(key, SecretStr) else key
        if text.startswith(other):
            kind = "public key (its place is VAULT_PUBLIC_KEYS)" if private else \
                "private key: never give it to this list, which every process reads"
            raise ValueError(f"key {position + 1} is a {kind}")
        body = text[len(prefix):] if text.startswith(prefix) else None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) if body else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError(f"key {position + 1} is not a vault {'private' if private else 'public'} key "
                             f"({prefix}... of `tradefleet keys generate`)")
    return value


def _read_secret_files(settings: "Settings") -> None:
    """Fill each setting of :data:`SECRET_FILES` from its ``*_FILE`` when that is set: the whole file
    (stripped) for ``JWT_SECRET_KEY``, one key a line (``#`` comments and blank lines skipped) for the
    key lists. ``ValueError`` naming the settings when both are given or the file cannot be read or
    holds a malformed key (never the file's content)."""
    for file_name, name in SECRET_FILES.items():
        path = getattr(settings, file_name)
        if path is None:
            continue
        current = getattr(settings, name)
        given = name in settings.model_fields_set and (
            bool(current) if isinstance(current, list) else current.get_secret_value() != "")
        if given:
            raise ValueError(f"{name} and {file_name} are both set: give one of them")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{file_name}: cannot read {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}") \
                from None
        if name == "JWT_SECRET_KEY":
            settings.JWT_SECRET_KEY = SecretStr(text.strip())
            continue
        lines = [line.strip() for line in text.splitlines()]
        items = [line for line in lines if line and not line.startswith("#")]
        try:
            if name == "VAULT_PUBLIC_KEYS":
                value: list = _vault_keys(items, private=False)
            elif name == "VAULT_PRIVATE_KEYS":
                value = _vault_keys([SecretStr(i) for i in items], private=True)
            else:
                value = _fernet_keys([SecretStr(i) for i in items])
        except ValueError as exc:
            raise ValueError(f"{file_name}: {exc}") from None
        setattr(settings, name, value)


# Values that appear in .env.example, docs or tutorials: never accepted as production secrets.
EXAMPLE_VALUES = frozenset({
    "", EXAMPLE_SECRET, "changeme", "change-me", "password", "secret", "example", "postgres",
    "tradefleet", "PASSWORD", "demo-password-123",
})


def _example(value: str | None) -> bool:
    return value is None or value.strip() in EXAMPLE_VALUES or value.strip().lower() in EXAMPLE_VALUES


def production_problems(settings: "Settings") -> list[str]:
    """What keeps ``settings`` from being safe in production, one ``"NAME: why"`` per setting
    (empty when nothing): ``JWT_SECRET_KEY``, ``VAULT_PUBLIC_KEYS``, ``TOTP_ENCRYPTION_KEY``, the
    ``DATABASE_URL`` password and the SMTP settings (``SMTP_HOST``, ``SMTP_USER``, ``SMTP_PASSWORD``,
    ``EMAILS_FROM_EMAIL``). Keys a process must not hold are checked by that process
    (:func:`decryption_keys_held`)."""
    from sqlalchemy.engine import make_url

    problems: list[str] = []
    jwt = settings.JWT_SECRET_KEY.get_secret_value()
    if _example(jwt) or len(jwt) < 32:
        problems.append("JWT_SECRET_KEY: missing, an example value or shorter than 32 characters")
    if not settings.VAULT_PUBLIC_KEYS:
        problems.append("VAULT_PUBLIC_KEYS: missing (the vault's public keys, newest first; "
                        "`tradefleet keys generate`)")
    if not settings.TOTP_ENCRYPTION_KEY:
        problems.append("TOTP_ENCRYPTION_KEY: missing (a Fernet key for two-factor secrets)")
    try:
        url = make_url(settings.DATABASE_URL)
    except Exception:  # noqa: BLE001 - any unparsable URL is a problem to report, not a crash
        url = None
    if url is None or not url.drivername.startswith("postgres"):
        problems.append("DATABASE_URL: must be a PostgreSQL URL in production")
    elif _example(url.password):
        problems.append("DATABASE_URL: the database password is missing or an example value")
    # Without SMTP, sign-up, password reset and lockout notices would only reach the log.
    for name in ("SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD", "EMAILS_FROM_EMAIL"):
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if _example(None if value is None else str(value)) or "example.com" in str(value):
            problems.append(f"{name}: missing or an example value")
    return problems


def decryption_keys_held(settings: "Settings") -> list[str]:
    """The settings present in ``settings`` that can open stored exchange keys
    (``VAULT_PRIVATE_KEYS``, ``API_ENCRYPTION_KEYS``): the API and beat must hold none."""
    return [name for name in ("VAULT_PRIVATE_KEYS", "API_ENCRYPTION_KEYS") if getattr(settings, name)]


def example_secrets(settings: "Settings") -> list[str]:
    """The secrets of ``settings`` left at a value anyone can know, one ``"NAME: why"`` each: a
    ``JWT_SECRET_KEY`` that is an example value (``changethis``, those of ``.env.example`` and the docs)
    or shorter than 32 characters, and a ``DATABASE_URL`` or ``SMTP_PASSWORD`` password that is an
    example value. The API refuses to serve on a non-loopback address while any is left
    (:mod:`tradefleet.api.exposure`), whatever ``ENVIRONMENT`` says."""
    from sqlalchemy.engine import make_url

    problems = []
    jwt = settings.JWT_SECRET_KEY.get_secret_value()
    if _example(jwt) or len(jwt) < 32:
        problems.append("JWT_SECRET_KEY: an example value or shorter than 32 characters")
    try:
        password = make_url(settings.DATABASE_URL).password
    except Exception:  # noqa: BLE001 - an unparsable URL fails elsewhere, with its own message
        password = None
    if password is not None and _example(str(password)):
        problems.append("DATABASE_URL: the database password is an example value")
    if settings.SMTP_PASSWORD is not None and _example(settings.SMTP_PASSWORD.get_secret_value()):
        problems.append("SMTP_PASSWORD: an example value")
    return problems


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache after changing the environment)."""
    return Settings()
