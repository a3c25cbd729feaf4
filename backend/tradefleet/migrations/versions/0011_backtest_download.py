"""backtest downloads: candles each user's backtests may download per UTC day

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

``backtest_download``: one row per ``(owner_id, day)`` with the candles of unstored ranges that user's
backtests were charged that UTC day (the count behind ``BACKTEST_DOWNLOAD_CANDLES_PER_DAY``). Deleted
with the user. Plain ``CREATE TABLE``; runs as is on SQLite and PostgreSQL.
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backtest_download",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("candles", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("backtest_download")
