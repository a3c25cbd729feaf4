"""live events (the SSE fallback without Redis) and admin strategy switches

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

``live_event``: a user's channel as rows, read by ``GET /api/v1/events/stream`` when no Redis is
configured (the embedded ``make run``), pruned after ``EVENTS_RETENTION_S``. ``strategy_setting``: the
strategies an admin has disabled (``PATCH /api/v1/admin/strategies/{name}``).
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "live_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("live_event", schema=None) as batch_op:
        batch_op.create_index("ix_live_event_user_id", ["user_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_live_event_created_at"), ["created_at"], unique=False)
    op.create_table(
        "strategy_setting",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["updated_by"], ["user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("strategy_setting")
    with op.batch_alter_table("live_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_event_created_at"))
        batch_op.drop_index("ix_live_event_user_id")
    op.drop_table("live_event")
