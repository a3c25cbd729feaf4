"""partial indexes on the open orders and open trade of a run (read on every tick)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_index("ix_order_run_open", "order", ["run_id"], postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_trade_run_open", "trade", ["run_id"], postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade() -> None:
    op.drop_index("ix_trade_run_open", table_name="trade")
    op.drop_index("ix_order_run_open", table_name="order")
