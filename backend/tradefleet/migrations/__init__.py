"""Alembic migrations; run them with ``tradefleet migrate`` (:func:`upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """The Alembic config for this package's migrations."""
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade(revision: str = "head") -> None:
    """Bring the database of ``Settings.DATABASE_URL`` to ``revision``."""
    command.upgrade(alembic_config(), revision)
