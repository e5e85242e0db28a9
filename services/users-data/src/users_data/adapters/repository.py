"""The one place that reads and writes users in PostgreSQL.

Plain Core statements on a connection the unit of work owns: the domain's User stays a frozen
dataclass (no ORM instrumentation, no lazy loads to trip over in async code), and rows are turned
into Users here and nowhere else.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from platform_contract.domain import KeyTaken
from users_data.adapters.tables import EMAIL_UNIQUE, TELEGRAM_ID_UNIQUE, users
from users_data.domain.model import User, normalize_email

UNIQUE_VIOLATION = "23505"


def _to_user(row: sa.Row[Any]) -> User:
    return User(id=row.id, email=row.email, name=row.name, created_at=row.created_at, telegram_id=row.telegram_id)


def _row(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "created_at": user.created_at,
        "telegram_id": user.telegram_id,
    }


def _email_taken(error: IntegrityError) -> bool:
    # The unique constraint, not a read before the write, decides: two concurrent requests for the
    # same email cannot both pass it.
    cause = getattr(error.orig, "__cause__", None)
    return (
        getattr(error.orig, "sqlstate", None) == UNIQUE_VIOLATION
        and getattr(cause, "constraint_name", EMAIL_UNIQUE) == EMAIL_UNIQUE
    )


class UserRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add(self, user: User) -> None:
        await self._write(users.insert().values(**_row(user)), user.email)

    async def add_unless_telegram_id_taken(self, user: User) -> bool:
        """Adds `user` unless a user with its telegram_id exists (then False, nothing written). The
        unique constraint decides, not a read before the write: of concurrent calls for one
        Telegram id, exactly one adds (the others wait for it to commit, then find its row)."""
        stmt = (
            pg_insert(users)
            .values(**_row(user))
            .on_conflict_do_nothing(constraint=TELEGRAM_ID_UNIQUE)
            .returning(users.c.id)
        )
        return (await self._conn.execute(stmt)).first() is not None

    async def update(self, user: User) -> None:
        stmt = users.update().where(users.c.id == user.id).values(email=user.email, name=user.name)
        await self._write(stmt, user.email)

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        stmt = sa.select(users).where(users.c.id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return _to_user(row) if row else None

    async def get_by_email(self, email: str) -> User | None:
        stmt = sa.select(users).where(users.c.email == normalize_email(email))
        row = (await self._conn.execute(stmt)).first()
        return _to_user(row) if row else None

    async def get_by_telegram_id(self, telegram_id: int) -> User | None:
        row = (await self._conn.execute(sa.select(users).where(users.c.telegram_id == telegram_id))).first()
        return _to_user(row) if row else None

    async def list(self, *, limit: int, offset: int = 0) -> list[User]:
        # created_at alone is not unique; the id makes the order (and so pagination) stable
        stmt = sa.select(users).order_by(users.c.created_at, users.c.id).limit(limit).offset(offset)
        return [_to_user(row) for row in await self._conn.execute(stmt)]

    async def delete(self, user_id: uuid.UUID) -> bool:
        result = await self._conn.execute(users.delete().where(users.c.id == user_id))
        return result.rowcount == 1

    async def _write(self, stmt: sa.Executable, email: str | None) -> None:
        try:
            await self._conn.execute(stmt)
        except IntegrityError as error:
            if email is not None and _email_taken(error):
                raise KeyTaken("a user", "email", email) from None
            raise
