"""Fixtures shared by the users-data tests.

Unit tests need nothing. Everything else runs against a real PostgreSQL given by
PLATFORM_POSTGRES_DSN (`hack/postgres.sh up` then `eval "$(hack/postgres.sh env)"`); each test
module gets a database of its own, created for it and dropped after it, so runs never see each
other's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from users_data_testkit import UsersData

from platform_contract import testing

# The fixtures every data service's suite has.
from platform_contract.testing.data_service import (  # noqa: F401
    http_port,
    json_logs,
    running_app,
    settings,
    unreachable_database_url,
)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    hint = (
        "start PostgreSQL with `BACKENDS_NAME=svc-users POSTGRES_PORT=5451 hack/postgres.sh up` and "
        '`eval "$(BACKENDS_NAME=svc-users hack/postgres.sh env)"`'
    )
    return testing.required_env(("PLATFORM_POSTGRES_DSN",), hint=hint)["PLATFORM_POSTGRES_DSN"]


@pytest.fixture(scope="module")
async def database_url(postgres_dsn: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, empty database for this test module (dropped afterwards, connections or not)."""
    name = testing.database_name(request)
    admin = create_async_engine(postgres_dsn, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_dsn).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(scope="session")
def data_service() -> UsersData:
    return UsersData()
