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
        env_file=(".env", str(REPO_ROOT / ".env")), env_file_encoding="utf-8", extra="ignore"
    )

    ENVIRONMENT: Literal["local", "test", "production"] = "local"
    PROJECT_NAME: str = "Tradefleet"

    # --- storage -------------------------------------------------------------------------
    DATABASE_URL: str = f"sqlite:///{REPO_ROOT / 'var' / 'tradefleet.db'}"
    REDIS_URL: str | None = None
    CELERY_BROKER_URL: str | None = None
    """Defaults to REDIS_URL, else kombu's SQLAlchemy transport on a SQLite file beside the database."""

    # --- security ------------------------------------------------------------------------
    JWT_SECRET_KEY: SecretStr = SecretStr(EXAMPLE_SECRET)
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=60 * 24, ge=1)

    # --- strategies and market data ------------------------------------------------------
    STRATEGIES_DIR: Path = REPO_ROOT / "strategies"
    EXCHANGE_API_URLS: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """Per exchange id, a base URL that replaces the scheme and host of every API URL ccxt knows
    for it (``{"binance": "http://127.0.0.1:8100"}`` points ccxt's binance at the simulator).
    In the environment: JSON, or ``binance=http://127.0.0.1:8100,kraken=...``."""
    EXCHANGES_ENABLED: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["binance"])
    """ccxt exchange ids that runs may use."""
    MARKET_CACHE_TTL_S: int = Field(default=600, ge=1)
    CCXT_TIMEOUT_MS: int = Field(default=10_000, ge=100)

    # --- fleet engine --------------------------------------------------------------------
    SCHEDULE_INTERVAL_S: float = Field(default=1.0, gt=0)
    """How often beat fires ``engine.schedule``."""
    ENGINE_BATCH_SIZE: int = Field(default=500, ge=1)
    """Runs of one market evaluated by one ``evaluate_market`` task."""
    ENGINE_MAX_CATCHUP_CANDLES: int = Field(default=60, ge=1)
    """A run further behind than this skips ahead (with an event) instead of replaying every candle."""
    STRATEGY_TIMEOUT_S: float = Field(default=5.0, gt=0)
    """Wall time one call into strategy code may take before its run is paused."""
    MAX_RUNS_PER_USER: int = Field(default=50, ge=1)

    # --- live updates (issue 6) -----------------------------------------------------------
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

    # --- demo ----------------------------------------------------------------------------
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

    @field_validator("EXCHANGES_ENABLED", mode="before")
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
        # In production a default secret would let anyone forge tokens: refuse to start and say which.
        if self.ENVIRONMENT == "production":
            missing = []
            if self.JWT_SECRET_KEY.get_secret_value() in ("", EXAMPLE_SECRET):
                missing.append("JWT_SECRET_KEY")
            if missing:
                raise ValueError(
                    "refusing to start with ENVIRONMENT=production: set " + ", ".join(missing)
                )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache after changing the environment)."""
    return Settings()
