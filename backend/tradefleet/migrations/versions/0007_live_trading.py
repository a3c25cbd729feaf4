"""live trading: exchange accounts with encrypted keys; live orders and runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

``exchange_account``: a trader's keys for one exchange. Every credential column (``api_key_enc``,
``secret_enc``, ``password_enc``, ``uid_enc``) holds a MultiFernet token of
``tradefleet.security.vault``, never plaintext; ``fingerprint`` is the masked key shown by the API.
Deleted with its owner. The index on ``(owner_id, created_at)`` serves the owner's list.


"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- exchange accounts (keys) ---------------------------------------------------------------
    op.create_table(
        "exchange_account",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("exchange", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("api_key_enc", sa.Text(), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("password_enc", sa.Text(), nullable=True),
        sa.Column("uid_enc", sa.Text(), nullable=True),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("check_status", sa.Enum("pending", "valid", "invalid", "error", name="keycheckstatus",
                                          native_enum=False, length=16), nullable=False),
        sa.Column("check_message", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("keys_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("exchange_account", schema=None) as batch_op:
        batch_op.create_index("ix_exchange_account_owner_created", ["owner_id", "created_at"], unique=False)

    # --- live orders, runs, halt (4c) ------------------------------------------------------------
    # Live order states (intent, submitted, unknown) need no change: statuses are VARCHAR(16).
    with op.batch_alter_table("order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("fill", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exchange_trade_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_fill_order_trade", ["order_id", "exchange_trade_id"])
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exchange_account_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("killed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_run_exchange_account_id", ["exchange_account_id"], unique=False)
        batch_op.create_foreign_key("fk_run_exchange_account_id", "exchange_account", ["exchange_account_id"], ["id"],
                                    ondelete="SET NULL")
    op.create_table(
        "trading_halt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_user_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    # --- live orders, runs, halt (4c) ------------------------------------------------------------
    op.drop_table("trading_halt")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_constraint("fk_run_exchange_account_id", type_="foreignkey")
        batch_op.drop_index("ix_run_exchange_account_id")
        batch_op.drop_column("killed_at")
        batch_op.drop_column("exchange_account_id")
    with op.batch_alter_table("fill", schema=None) as batch_op:
        batch_op.drop_constraint("uq_fill_order_trade", type_="unique")
        batch_op.drop_column("exchange_trade_id")
    with op.batch_alter_table("order", schema=None) as batch_op:
        batch_op.drop_column("attempts")

    # --- exchange accounts (keys) ---------------------------------------------------------------
    with op.batch_alter_table("exchange_account", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_account_owner_created")
    op.drop_table("exchange_account")
