"""candles: stored historical OHLCV

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

One table, ``candle``, keyed by ``(exchange, symbol, timeframe, time_ms)``: the composite primary key
is what de-duplicates imported and downloaded candles (``tradefleet.market.store`` upserts on it), and
its index serves every read (one series, a time range, in order). Plain ``CREATE TABLE``: runs as is
on SQLite and PostgreSQL.
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'candle',
        sa.Column('exchange', sa.String(length=50), nullable=False),
        sa.Column('symbol', sa.String(length=50), nullable=False),
        sa.Column('timeframe', sa.String(length=8), nullable=False),
        sa.Column('time_ms', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('open', sa.Float(), nullable=False),
        sa.Column('high', sa.Float(), nullable=False),
        sa.Column('low', sa.Float(), nullable=False),
        sa.Column('close', sa.Float(), nullable=False),
        sa.Column('volume', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('exchange', 'symbol', 'timeframe', 'time_ms'),
    )


def downgrade() -> None:
    op.drop_table('candle')
