"""exchange keys sealed to the vault's public key: which key sealed each row

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

``exchange_account.vault_key_id``: the id of the public key every credential token of the row is
sealed to (``NULL`` when they differ, or for rows of the symmetric vault). Existing rows keep their
Fernet tokens and get ``NULL``: no migration can open them without the keys, so
``tradefleet keys migrate-sealed`` (with ``API_ENCRYPTION_KEYS``) re-seals them (SECRETS.md).
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vault_key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchange_account", schema=None) as batch_op:
        batch_op.drop_column("vault_key_id")
