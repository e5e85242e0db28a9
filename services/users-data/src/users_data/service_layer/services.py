"""The use cases, one function each: what the HTTP routes (and any future entrypoint) call."""

from __future__ import annotations

import uuid

from platform_contract.domain import RecordNotFound
from users_data.domain.model import User
from users_data.service_layer.unit_of_work import UnitOfWork


async def register_user(uow: UnitOfWork, *, email: str, name: str) -> User:
    user = User.register(email, name)
    async with uow:
        await uow.users.add(user)  # KeyTaken if the address is in use
    return user


async def user_for_telegram(uow: UnitOfWork, *, telegram_id: int, name: str) -> tuple[User, bool]:
    """The user of a Telegram account, made with `name` if there is none yet: (user, created).

    Idempotent, and safe when the same account comes in on several requests at once: the unique
    telegram_id lets one insert through and the others find that user. An existing user keeps its
    name (it may have been changed since, with PATCH)."""
    candidate = User.from_telegram(telegram_id, name)
    while True:
        async with uow:
            if await uow.users.add_unless_telegram_id_taken(candidate):
                return candidate, True
            existing = await uow.users.get_by_telegram_id(telegram_id)
        if existing is not None:
            return existing, False
        # deleted between the two statements: the next round makes it again


async def get_user(uow: UnitOfWork, user_id: uuid.UUID) -> User:
    async with uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise RecordNotFound("user", user_id)
    return user


async def find_users(uow: UnitOfWork, *, email: str | None, limit: int, offset: int) -> list[User]:
    async with uow:
        if email is not None:
            user = await uow.users.get_by_email(email)
            return [user] if user and offset == 0 else []
        return await uow.users.list(limit=limit, offset=offset)


async def change_user(uow: UnitOfWork, user_id: uuid.UUID, *, email: str | None, name: str | None) -> User:
    async with uow:
        # locked until commit: two PATCHes of the same user apply one after the other, neither lost
        user = await uow.users.get(user_id, for_update=True)
        if user is None:
            raise RecordNotFound("user", user_id)
        changed = user.changed(email=email, name=name)
        if changed != user:
            await uow.users.update(changed)
    return changed


async def remove_user(uow: UnitOfWork, user_id: uuid.UUID) -> None:
    async with uow:
        if not await uow.users.delete(user_id):
            raise RecordNotFound("user", user_id)
