"""trade.high_water_mark: the trailing stop's reference, kept between ticks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trade", schema=None) as batch_op:
        batch_op.add_column(sa.Column("high_water_mark", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trade", schema=None) as batch_op:
        batch_op.drop_column("high_water_mark")
