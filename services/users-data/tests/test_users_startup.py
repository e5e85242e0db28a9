"""Starting up: the migrations at startup and through `python -m users_data migrate`, and the
service as the container runs it (real processes, real PostgreSQL)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from users_data_testkit import UsersData

from platform_contract.testing import RunningApp, run_module
from platform_contract.testing.data_service import DataProcessContract
from users_data.config import Settings


def service_env(**overrides: str) -> dict[str, str]:
    return UsersData().env(**overrides)


def libpq_form(database_url: str) -> str:
    """The DSN as a Secret usually holds it (postgresql://), to prove the service rewrites it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await run_module("users_data", *args, env=env)


async def schema_version(database_url: str) -> str | None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            exists = (await conn.execute(sa.text("SELECT to_regclass('alembic_version')"))).scalar_one()
            if exists is None:
                return None
            return (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await engine.dispose()


@pytest.fixture
async def unmigrated_app_client(settings: Settings, running_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings.model_copy(update={"migrate_on_startup": False})) as client:
        yield client


async def test_migrate_command_makes_a_missing_schema_work(
    database_url: str, unmigrated_app_client: httpx.AsyncClient
) -> None:
    client = unmigrated_app_client
    # MIGRATE_ON_STARTUP=false and nobody migrated: the error reaches the client as a plain 500
    # that still carries its request id (to find the traceback in the logs), never a stack trace.
    broken = await client.get(f"/users/{uuid.uuid4()}", headers={"X-Request-ID": "before-migrate"})
    assert broken.status_code == 500
    assert broken.json() == {"detail": "internal server error"}
    assert broken.headers["x-request-id"] == "before-migrate"
    assert await schema_version(database_url) is None

    result = await run("migrate", env=service_env(DATABASE_URL=libpq_form(database_url)))

    assert result.returncode == 0, result.stderr
    assert "Running upgrade  -> 0001" in result.stderr
    assert "Running upgrade 0001 -> 0002" in result.stderr
    assert await schema_version(database_url) == "0002"
    assert (await client.get(f"/users/{uuid.uuid4()}")).status_code == 404


async def test_migrate_again_is_a_no_op(database_url: str) -> None:
    env = service_env(DATABASE_URL=database_url)
    await run("migrate", env=env)

    again = await run("migrate", env=env)

    assert again.returncode == 0, again.stderr
    assert "Running upgrade" not in again.stderr
    assert await schema_version(database_url) == "0002"


async def test_a_database_that_appears_late_is_migrated_without_a_restart(
    postgres_dsn: str, running_app: RunningApp
) -> None:
    name = f"late_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_dsn).set(database=name).render_as_string(hide_password=False)
    admin = create_async_engine(postgres_dsn, isolation_level="AUTOCOMMIT")
    try:
        async with running_app(Settings(DATABASE_URL=url), wait_ready=False) as client:
            await asyncio.sleep(0.3)
            waiting = await client.get("/ready")
            assert waiting.status_code == 503
            assert "schema not migrated yet" in waiting.json()["database"]
            assert f'database "{name}" does not exist' in waiting.json()["database"]
            assert (await client.get("/health")).status_code == 200

            async with admin.connect() as conn:
                await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

            for _ in range(100):  # retries back off from 1 s; the second or third attempt finds it
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            created = await client.post("/users", json={"email": "late@example.org", "name": "Late"})
        assert created.status_code == 201
        assert await schema_version(url) == "0002"
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


class TestUsersProcess(UsersData, DataProcessContract):
    """users-data as its container runs it, like every data service."""

    bad_settings: ClassVar[dict[str, dict[str, str]]] = {
        "DATABASE_URL is not set": {"DATABASE_URL": ""},
        "must be a PostgreSQL URL": {"DATABASE_URL": "mysql://u:p@db/users"},
        "PostgreSQL only": {"DATABASE_URL": "postgresql://u:p@db/users", "DATABASE_ENGINE": "mongo"},
    }
