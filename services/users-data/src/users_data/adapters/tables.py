"""The users table as SQLAlchemy Core sees it (the repository's view; migrations own the DDL)."""

from __future__ import annotations

import sqlalchemy as sa

from users_data.domain.model import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH

metadata = sa.MetaData()

EMAIL_UNIQUE = "users_email_key"
TELEGRAM_ID_UNIQUE = "users_telegram_id_key"

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("email", sa.String(EMAIL_MAX_LENGTH), nullable=True),
    sa.Column("name", sa.String(NAME_MAX_LENGTH), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("telegram_id", sa.BigInteger(), nullable=True),
    sa.UniqueConstraint("email", name=EMAIL_UNIQUE),
    sa.UniqueConstraint("telegram_id", name=TELEGRAM_ID_UNIQUE),
)
