"""Constants and helpers shared by conftest.py and test modules (conftest itself is not importable
by name from every folder)."""

from __future__ import annotations

import os

import pytest

CI = os.environ.get("CI", "").strip().lower() == "true"
DEFAULT_POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
TEST_JWT_SECRET = "test-jwt-secret-not-for-production-0123456789"


def unavailable(reason: str) -> None:
    """Skip the test because a service is missing, or fail it when ``CI=true`` (CI must run everything)."""
    if CI:
        pytest.fail(f"{reason} (CI=true: this service is required)", pytrace=False)
    pytest.skip(reason)
