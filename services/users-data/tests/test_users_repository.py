"""The repository and unit of work against a real PostgreSQL, on a schema made by the real
Alembic migrations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from platform_contract.domain import KeyTaken
from platform_contract.testing.data_service import only_one_is_made
from users_data.adapters import database
from users_data.config import Settings
from users_data.domain.model import User
from users_data.service_layer import services
from users_data.service_layer.unit_of_work import UnitOfWork

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = database.create_engine(settings)
    await database.migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def empty_table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("TRUNCATE users"))


async def count_users(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar_one()


async def test_migrations_create_the_users_table_with_a_unique_email(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
        columns = {
            name: (data_type, nullable)
            for name, data_type, nullable in await conn.execute(
                sa.text(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                    " WHERE table_name = 'users'"
                )
            )
        }
        unique = dict(
            (
                await conn.execute(
                    sa.text(
                        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                        " WHERE conrelid = 'users'::regclass AND contype = 'u'"
                    )
                )
            ).all()
        )

    assert version == "0002"
    assert columns == {
        "id": ("uuid", "NO"),
        "email": ("character varying", "YES"),
        "name": ("character varying", "NO"),
        "created_at": ("timestamp with time zone", "NO"),
        "telegram_id": ("bigint", "YES"),
    }
    assert unique == {"users_email_key": "UNIQUE (email)", "users_telegram_id_key": "UNIQUE (telegram_id)"}


async def test_migrating_again_changes_nothing(engine: AsyncEngine) -> None:
    async with UnitOfWork(engine) as uow:
        await uow.users.add(User.register("kept@example.org", "Kept"))

    await database.migrate(engine)

    assert await count_users(engine) == 1


async def test_add_then_get_returns_the_same_user(engine: AsyncEngine) -> None:
    user = User.register("ann@example.org", "Ann", now=T0)
    async with UnitOfWork(engine) as uow:
        await uow.users.add(user)

    async with UnitOfWork(engine) as uow:
        stored = await uow.users.get(user.id)

    assert stored == user
    assert stored is not None and stored.created_at.tzinfo is not None


async def test_get_of_an_unknown_id_is_none(engine: AsyncEngine) -> None:
    async with UnitOfWork(engine) as uow:
        assert await uow.users.get(uuid.uuid4()) is None


async def test_get_by_email_ignores_case(engine: AsyncEngine) -> None:
    user = User.register("ann@example.org", "Ann")
    async with UnitOfWork(engine) as uow:
        await uow.users.add(user)
        assert await uow.users.get_by_email("  ANN@Example.org") == user
        assert await uow.users.get_by_email("bob@example.org") is None


async def test_a_second_user_with_the_same_email_is_refused_and_nothing_is_written(engine: AsyncEngine) -> None:
    first = User.register("ann@example.org", "Ann")
    async with UnitOfWork(engine) as uow:
        await uow.users.add(first)

    with pytest.raises(KeyTaken, match=r"^a user with email ann@example\.org already exists$"):
        async with UnitOfWork(engine) as uow:
            await uow.users.add(User.register("Ann@Example.org", "Another Ann"))

    assert await count_users(engine) == 1
    async with UnitOfWork(engine) as uow:
        assert await uow.users.get_by_email("ann@example.org") == first


async def test_concurrent_registrations_of_one_email_let_exactly_one_through(engine: AsyncEngine) -> None:
    await only_one_is_made(
        User, (services.register_user(UnitOfWork(engine), email="race@example.org", name=f"R{i}") for i in range(5))
    )
    assert await count_users(engine) == 1


async def test_a_telegram_user_is_stored_without_an_email_and_found_by_its_telegram_id(engine: AsyncEngine) -> None:
    user = User.from_telegram(2**62, "Ann", now=T0)
    async with UnitOfWork(engine) as uow:
        assert await uow.users.add_unless_telegram_id_taken(user)
        # many users without an email: NULLs do not collide in the unique constraint
        assert await uow.users.add_unless_telegram_id_taken(User.from_telegram(7, "Bob"))

    async with UnitOfWork(engine) as uow:
        assert await uow.users.get_by_telegram_id(2**62) == user
        assert await uow.users.get(user.id) == user
        assert await uow.users.get_by_telegram_id(8) is None


async def test_a_second_user_with_the_same_telegram_id_is_not_added(engine: AsyncEngine) -> None:
    first = User.from_telegram(42, "Ann")
    async with UnitOfWork(engine) as uow:
        assert await uow.users.add_unless_telegram_id_taken(first)
    async with UnitOfWork(engine) as uow:
        assert not await uow.users.add_unless_telegram_id_taken(User.from_telegram(42, "Another Ann"))

    assert await count_users(engine) == 1
    async with UnitOfWork(engine) as uow:
        assert await uow.users.get_by_telegram_id(42) == first


async def test_concurrent_user_for_telegram_calls_make_exactly_one_user(engine: AsyncEngine) -> None:
    results = await asyncio.gather(
        *(services.user_for_telegram(UnitOfWork(engine), telegram_id=99, name=f"R{i}") for i in range(5))
    )

    assert sum(created for _, created in results) == 1
    assert len({user for user, _ in results}) == 1
    assert await count_users(engine) == 1


async def test_update_writes_the_new_email_and_name(engine: AsyncEngine) -> None:
    user = User.register("ann@example.org", "Ann")
    async with UnitOfWork(engine) as uow:
        await uow.users.add(user)
        await uow.users.update(user.changed(email="ann@new.example.org", name="Ann B."))

    async with UnitOfWork(engine) as uow:
        stored = await uow.users.get(user.id)
    assert stored is not None
    assert (stored.email, stored.name, stored.created_at) == ("ann@new.example.org", "Ann B.", user.created_at)


async def test_update_to_an_email_in_use_is_refused(engine: AsyncEngine) -> None:
    ann, bob = User.register("ann@example.org", "Ann"), User.register("bob@example.org", "Bob")
    async with UnitOfWork(engine) as uow:
        await uow.users.add(ann)
        await uow.users.add(bob)

    with pytest.raises(KeyTaken, match=r"^a user with email ann@example\.org already exists$"):
        async with UnitOfWork(engine) as uow:
            await uow.users.update(bob.changed(email="ann@example.org"))

    async with UnitOfWork(engine) as uow:
        assert await uow.users.get(bob.id) == bob


async def test_delete_removes_once(engine: AsyncEngine) -> None:
    user = User.register("ann@example.org", "Ann")
    async with UnitOfWork(engine) as uow:
        await uow.users.add(user)

    async with UnitOfWork(engine) as uow:
        assert await uow.users.delete(user.id) is True
    async with UnitOfWork(engine) as uow:
        assert await uow.users.delete(user.id) is False
        assert await uow.users.get(user.id) is None


async def test_list_is_ordered_by_creation_and_pages(engine: AsyncEngine) -> None:
    created = [User.register(f"u{i}@example.org", f"U{i}", now=T0 + timedelta(seconds=i)) for i in range(5)]
    async with UnitOfWork(engine) as uow:
        for user in reversed(created):
            await uow.users.add(user)

    async with UnitOfWork(engine) as uow:
        first_page = await uow.users.list(limit=2)
        second_page = await uow.users.list(limit=2, offset=2)
        rest = await uow.users.list(limit=10, offset=4)

    assert first_page == created[:2]
    assert second_page == created[2:4]
    assert rest == created[4:]


async def test_an_error_inside_the_unit_of_work_rolls_everything_back(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with UnitOfWork(engine) as uow:
            await uow.users.add(User.register("ann@example.org", "Ann"))
            raise RuntimeError("boom")

    assert await count_users(engine) == 0


async def test_concurrent_changes_to_one_user_are_both_kept(engine: AsyncEngine) -> None:
    user = await services.register_user(UnitOfWork(engine), email="ann@example.org", name="Ann")

    await asyncio.gather(
        services.change_user(UnitOfWork(engine), user.id, email="ann@new.example.org", name=None),
        services.change_user(UnitOfWork(engine), user.id, email=None, name="Ann B."),
    )

    stored = await services.get_user(UnitOfWork(engine), user.id)
    assert (stored.email, stored.name) == ("ann@new.example.org", "Ann B.")
