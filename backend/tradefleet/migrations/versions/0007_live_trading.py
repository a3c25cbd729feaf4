"""live trading (issue 4): exchange accounts with encrypted keys; live orders and runs

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01

``exchange_account``: a trader's keys for one exchange. Every credential column (``api_key_enc``,
``secret_enc``, ``password_enc``, ``uid_enc``) holds a MultiFernet token of
``tradefleet.security.vault``, never plaintext; ``fingerprint`` is the masked key shown by the API.
Deleted with its owner. The index on ``(owner_id, created_at)`` serves the owner's list.

(The lead rewires ``down_revision`` to "0006" when merging issue 5.)
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = "0007"
down_revision = "0005"
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
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("exchange_account", schema=None) as batch_op:
        batch_op.create_index("ix_exchange_account_owner_created", ["owner_id", "created_at"], unique=False)

    # --- live orders, runs, halt (4c) ------------------------------------------------------------


def downgrade() -> None:
    # --- live orders, runs, halt (4c) ------------------------------------------------------------

    # --- exchange accounts (keys) ---------------------------------------------------------------
    with op.batch_alter_table("exchange_account", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_account_owner_created")
    op.drop_table("exchange_account")
