"""Fixtures shared by the users-data tests.

Unit tests need nothing. Everything else runs against a real PostgreSQL given by
PLATFORM_POSTGRES_DSN (`hack/postgres.sh up` then `eval "$(hack/postgres.sh env)"`); each test
module gets a database of its own, created for it and dropped after it, so runs never see each
other's rows.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from users_data.bootstrap import build_app
from users_data.config import Settings

RunningApp = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    dsn = os.environ.get("PLATFORM_POSTGRES_DSN", "")
    if not dsn:
        pytest.fail(
            "PLATFORM_POSTGRES_DSN is not set: start PostgreSQL with "
            "`BACKENDS_NAME=svc-users POSTGRES_PORT=5451 hack/postgres.sh up` and "
            '`eval "$(BACKENDS_NAME=svc-users hack/postgres.sh env)"`',
            pytrace=False,
        )
    return dsn


@pytest.fixture(scope="module")
async def database_url(postgres_dsn: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, empty database for this test module (dropped afterwards, connections or not)."""
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    name = f"{module}_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(postgres_dsn, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_dsn).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(DATABASE_URL=database_url, DATABASE_ENGINE="postgres", SERVICE_NAME="users-data")


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_database_url() -> str:
    """A PostgreSQL URL on a local port where nothing listens: a database that is down."""
    return f"postgresql://platform:secret@127.0.0.1:{free_port()}/platform"


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def running_app() -> RunningApp:
    """running_app(settings, wait_ready=True): the app with its startup and shutdown run (as uvicorn
    would), and an httpx client calling it in-process."""

    @asynccontextmanager
    async def run(settings: Settings, *, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
        app = build_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://users-data") as client,
        ):
            if wait_ready:
                await until_ready(client)
            yield client

    return run


async def until_ready(client: httpx.AsyncClient, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while (response := await client.get("/ready")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, f"not ready after {seconds}s: {response.text}"
        await asyncio.sleep(0.1)
