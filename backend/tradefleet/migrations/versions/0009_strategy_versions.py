"""strategy versions: bundled files and authors' uploads as immutable rows; runs and backtests pin one

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

``strategy_version``: one row per file content (bundled) or upload, with its source, manifest,
validation report and review. ``run.strategy_version_id`` and ``backtest.strategy_version_id``: the
version each executes; NULL on existing rows until their first use pins the current bundled version of
their strategy name. ``user.display_name``: the author name shown in the catalog.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "strategy_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("origin", sa.Enum("bundled", "upload", name="versionorigin", native_enum=False,
                                    create_constraint=False, length=16), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Enum("validating", "invalid", "pending_review", "approved", "rejected",
                                    name="versionstatus", native_enum=False, create_constraint=False,
                                    length=16), nullable=False),
        sa.Column("manifest", JSON, nullable=True),
        sa.Column("report", JSON, nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.Uuid(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["user.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["reviewed_by"], ["user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_strategy_version_name_version"),
        sa.UniqueConstraint("author_id", "content_hash", name="uq_strategy_version_author_hash"),
    )
    with op.batch_alter_table("strategy_version", schema=None) as batch_op:
        batch_op.create_index("ix_strategy_version_status_created", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_strategy_version_author_created", ["author_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_strategy_version_content_hash"), ["content_hash"], unique=False)
    for table in ("run", "backtest"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("strategy_version_id", sa.Uuid(), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_strategy_version_id"), ["strategy_version_id"],
                                  unique=False)
            batch_op.create_foreign_key(f"fk_{table}_strategy_version_id", "strategy_version",
                                        ["strategy_version_id"], ["id"])
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("display_name")
    for table in ("backtest", "run"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_strategy_version_id", type_="foreignkey")
            batch_op.drop_index(batch_op.f(f"ix_{table}_strategy_version_id"))
            batch_op.drop_column("strategy_version_id")
    with op.batch_alter_table("strategy_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_strategy_version_content_hash"))
        batch_op.drop_index("ix_strategy_version_author_created")
        batch_op.drop_index("ix_strategy_version_status_created")
    op.drop_table("strategy_version")
