"""Users known by their Telegram account: an optional unique telegram_id, and email optional.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A user made for a Telegram account has a name but no email. Both stay unique when present
    # (PostgreSQL lets any number of NULLs through a unique constraint).
    op.add_column("users", sa.Column("telegram_id", sa.BigInteger(), nullable=True))
    op.create_unique_constraint("users_telegram_id_key", "users", ["telegram_id"])
    op.alter_column("users", "email", existing_type=sa.String(320), nullable=True)


def downgrade() -> None:
    # Fails while users without an email exist: they cannot be kept in the old schema.
    op.alter_column("users", "email", existing_type=sa.String(320), nullable=False)
    op.drop_constraint("users_telegram_id_key", "users", type_="unique")
    op.drop_column("users", "telegram_id")
