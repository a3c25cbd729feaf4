"""Production checks (issue 5, item 8): with ENVIRONMENT=production the settings refuse to load while a
secret is missing or left at an example value, naming each one; the app and the CLI refuse to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from tradefleet.config import Settings

REPO = Path(__file__).resolve().parents[3]

GOOD = {
    "ENVIRONMENT": "production",
    "JWT_SECRET_KEY": "k" * 20 + "9f8e7d6c5b4a39281706f5e4",
    "API_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgresql://tradefleet:Zr8-not-an-example@db.internal:5432/tradefleet",
    "SMTP_HOST": "smtp.mailhost.net",
    "SMTP_USER": "mailer",
    "SMTP_PASSWORD": "mail-Pass-4c3b2a",
    "EMAILS_FROM_EMAIL": "noreply@tradefleet.net",
}
NAMES = ["JWT_SECRET_KEY", "API_ENCRYPTION_KEYS", "DATABASE_URL", "SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD",
         "EMAILS_FROM_EMAIL"]


def _error(settings_env, **values) -> str:
    with pytest.raises(ValidationError) as info:
        settings_env(**values)
    return str(info.value)


def test_good_production_settings_load(settings_env):
    settings = settings_env(**GOOD)
    assert settings.ENVIRONMENT == "production"
    assert len(settings.API_ENCRYPTION_KEYS) == 1


def test_every_missing_setting_is_named(settings_env):
    # The test baseline sets a vault key (tests/conftest.py): unset it too.
    message = _error(settings_env, ENVIRONMENT="production", JWT_SECRET_KEY=None, DATABASE_URL=None,
                     API_ENCRYPTION_KEYS=None)
    for name in NAMES:
        assert f"{name}:" in message, name
    assert "refusing to start with ENVIRONMENT=production" in message


@pytest.mark.parametrize("name,value", [
    ("JWT_SECRET_KEY", "changethis"),
    ("JWT_SECRET_KEY", "short-but-not-example"),
    ("API_ENCRYPTION_KEYS", "not-a-fernet-key"),
    ("DATABASE_URL", "sqlite:///var/tradefleet.db"),
    ("DATABASE_URL", "postgresql://tradefleet@db.internal:5432/tradefleet"),
    ("DATABASE_URL", "postgresql://tradefleet:changethis@db.internal:5432/tradefleet"),
    ("DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1/tradefleet"),
    ("SMTP_HOST", "smtp.example.com"),
    ("SMTP_PASSWORD", "changeme"),
    ("EMAILS_FROM_EMAIL", "noreply@example.com"),
])
def test_each_example_value_is_refused_by_name(settings_env, name, value):
    message = _error(settings_env, **{**GOOD, name: value})
    # A malformed Fernet key is refused in every environment by the field's own validator, which pydantic
    # reports as "API_ENCRYPTION_KEYS\n  Value error, key 1 is not a Fernet key ..."; the rest by the
    # production check, as "NAME: ...".
    assert f"{name}:" in message or f"{name}\n  Value error" in message, message
    others = [n for n in NAMES if n != name]
    assert not any(f"{n}:" in message for n in others), message


def test_a_second_rotated_key_must_be_valid_too(settings_env):
    keys = f"{Fernet.generate_key().decode()},nope"
    assert "key 2 is not a Fernet key" in _error(settings_env, **{**GOOD, "API_ENCRYPTION_KEYS": keys})


def test_example_values_load_outside_production(settings_env):
    settings = settings_env(ENVIRONMENT="local", JWT_SECRET_KEY="changethis")
    assert settings.JWT_SECRET_KEY.get_secret_value() == "changethis"


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in Settings.model_fields}
    env.update(values)
    return env


@pytest.mark.parametrize("argv", [
    [sys.executable, "-c", "import tradefleet.api.main"],
    [sys.executable, "-c", "import tradefleet.worker.app"],
    [str(Path(sys.executable).with_name("tradefleet")), "migrate"],
], ids=["api", "worker", "cli"])
def test_api_worker_and_cli_refuse_to_start(argv, tmp_path):
    env = _clean_env(ENVIRONMENT="production", JWT_SECRET_KEY="changethis")
    proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert proc.returncode != 0
    for name in NAMES:
        assert f"{name}:" in proc.stderr, (name, proc.stderr[-2000:])
