"""The engine, the readiness check and the schema migrations: everything that touches PostgreSQL
as a server rather than as a table."""

from __future__ import annotations

import logging
from functools import partial
from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from platform_contract.data_service import StartupStep, answers_within
from users_data.config import Settings

log = logging.getLogger(__name__)

# Any constant shared by every replica: two pods starting together take turns instead of racing
# to create the same table.
MIGRATION_LOCK_ID = 0x7573657273  # "users"


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.async_database_url()
    log.info("database: %s", url.render_as_string(hide_password=True))
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        pool_pre_ping=True,  # a connection cut by a database restart is replaced, not handed out
        connect_args={"timeout": settings.db_connect_timeout_seconds},
    )


async def ping(engine: AsyncEngine, within_seconds: float) -> str:
    """'' when the database answers within `within_seconds`, else why not (no credentials in it)."""

    async def select_1() -> None:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    return await answers_within(within_seconds, select_1, describe)


def describe(error: BaseException) -> str:
    """What went wrong, in the driver's words (they name host and user, never the password)."""
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {cause}"[:300]


def alembic_config() -> Config:
    """Alembic's configuration without an alembic.ini: the scripts ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("users_data") / "migrations"))
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrades the schema to `revision` in one transaction, under an advisory lock."""

    def upgrade(connection: Connection) -> None:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        config = alembic_config()
        config.attributes["connection"] = connection  # migrations/env.py runs on this connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
    log.info("database schema at %s", revision)


def startup_migrations(engine: AsyncEngine) -> StartupStep:
    """The migrations a starting replica runs in the background, retried until they succeed (the
    pod is alive and not ready meanwhile: see StartupStep)."""
    words = {"failed": "database migrations failed", "not_done": "schema not migrated yet", "running": "migrating"}
    return StartupStep(partial(migrate, engine), describe=describe, log=log, **words)
