"""Production checks: with ENVIRONMENT=production the settings refuse to load while a secret is missing
or left at an example value, naming each one; the app and the CLI refuse to start; the API also refuses
to start holding a key that opens stored exchange keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from tradefleet.config import Settings
from tradefleet.security.vault import generate_key_pair

REPO = Path(__file__).resolve().parents[3]

GOOD = {
    "ENVIRONMENT": "production",
    "JWT_SECRET_KEY": "k" * 20 + "9f8e7d6c5b4a39281706f5e4",
    "VAULT_PUBLIC_KEYS": generate_key_pair().public,
    "VAULT_PRIVATE_KEYS": None,
    "TOTP_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgresql://tradefleet:Zr8-not-an-example@db.internal:5432/tradefleet",
    "SMTP_HOST": "smtp.mailhost.net",
    "SMTP_USER": "mailer",
    "SMTP_PASSWORD": "mail-Pass-4c3b2a",
    "EMAILS_FROM_EMAIL": "noreply@tradefleet.net",
}
NAMES = ["JWT_SECRET_KEY", "VAULT_PUBLIC_KEYS", "TOTP_ENCRYPTION_KEY", "DATABASE_URL", "SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD",
         "EMAILS_FROM_EMAIL"]


def _error(settings_env, **values) -> str:
    with pytest.raises(ValidationError) as info:
        settings_env(**values)
    return str(info.value)


def test_good_production_settings_load(settings_env):
    settings = settings_env(**GOOD)
    assert settings.ENVIRONMENT == "production"
    assert len(settings.VAULT_PUBLIC_KEYS) == 1 and len(settings.TOTP_ENCRYPTION_KEY) == 1


def test_every_missing_setting_is_named(settings_env):
    # The test baseline sets vault and TOTP keys (tests/conftest.py): unset them too.
    message = _error(settings_env, ENVIRONMENT="production", JWT_SECRET_KEY=None, DATABASE_URL=None,
                     VAULT_PUBLIC_KEYS=None, TOTP_ENCRYPTION_KEY=None)
    for name in NAMES:
        assert f"{name}:" in message, name
    assert "refusing to start with ENVIRONMENT=production" in message


@pytest.mark.parametrize("name,value", [
    ("JWT_SECRET_KEY", "changethis"),
    ("JWT_SECRET_KEY", "short-but-not-example"),
    ("TOTP_ENCRYPTION_KEY", "not-a-fernet-key"),
    ("VAULT_PUBLIC_KEYS", "vault-pk-not-a-key"),
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
    # A malformed key is refused in every environment by the field's own validator, which pydantic
    # reports as "TOTP_ENCRYPTION_KEY\n  Value error, key 1 is not a Fernet key ..."; the rest by the
    # production check, as "NAME: ...".
    assert f"{name}:" in message or f"{name}\n  Value error" in message, message
    others = [n for n in NAMES if n != name]
    assert not any(f"{n}:" in message for n in others), message


def test_a_second_rotated_key_must_be_valid_too(settings_env):
    keys = f"{Fernet.generate_key().decode()},nope"
    assert "key 2 is not a Fernet key" in _error(settings_env, **{**GOOD, "TOTP_ENCRYPTION_KEY": keys})


def test_example_values_load_outside_production(settings_env):
    settings = settings_env(ENVIRONMENT="local", JWT_SECRET_KEY="changethis")
    assert settings.JWT_SECRET_KEY.get_secret_value() == "changethis"


def _clean_env(**values: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in Settings.model_fields}
    env.update({k: v for k, v in values.items() if v is not None})
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


@pytest.mark.parametrize("name", ["VAULT_PRIVATE_KEYS", "API_ENCRYPTION_KEYS"])
def test_the_api_refuses_to_start_holding_a_key_that_opens_exchange_keys(name, tmp_path):
    value = generate_key_pair().private if name == "VAULT_PRIVATE_KEYS" else Fernet.generate_key().decode()
    api = [sys.executable, "-c", "import tradefleet.api.main"]
    good = subprocess.run(api, env=_clean_env(**GOOD), cwd=tmp_path, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert good.returncode == 0, good.stderr[-2000:]
    refused = subprocess.run(api, env=_clean_env(**{**GOOD, name: value}), cwd=tmp_path, capture_output=True,  # noqa: S603
                             text=True, timeout=120)
    assert refused.returncode != 0
    assert "DecryptionKeysRefused: refusing to start: the API must not hold " + name in refused.stderr
    assert value not in refused.stderr
    # The worker is the one process that holds it.
    worker = [sys.executable, "-c", "import tradefleet.worker.app"]
    assert subprocess.run(worker, env=_clean_env(**{**GOOD, name: value}), cwd=tmp_path, capture_output=True,  # noqa: S603
                          timeout=120).returncode == 0


def test_beat_refuses_to_start_holding_a_private_key(tmp_path):
    beat = [str(Path(sys.executable).with_name("celery")), "-A", "tradefleet.worker.app", "beat", "--loglevel", "INFO",
            "-s", str(tmp_path / "beat-schedule")]
    private = generate_key_pair().private
    env = _clean_env(**{**GOOD, "VAULT_PRIVATE_KEYS": private, "REDIS_URL": "redis://127.0.0.1:1/0"})
    proc = subprocess.run(beat, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "refusing to start: celery beat must not hold VAULT_PRIVATE_KEYS" in output, output[-2000:]
    assert private not in output
