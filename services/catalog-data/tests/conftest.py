"""Fixtures shared by the catalog-data tests.

Unit tests need nothing. Everything else runs against a real MongoDB-wire server given by
PLATFORM_MONGODB_URL (FerretDB: `hack/ferretdb.sh up` then `eval "$(hack/ferretdb.sh env)"`);
each test module gets a database of its own, named for it and made unique per run, and drops it
afterwards, so runs never see each other's documents.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase

from catalog_data.bootstrap import build_app
from catalog_data.config import Settings

RunningApp = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def with_database(url: str, name: str) -> str:
    """The MongoDB URL `url` pointing at the database `name` (its options kept)."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def mongodb_url() -> str:
    url = os.environ.get("PLATFORM_MONGODB_URL", "")
    if not url:
        pytest.fail(
            "PLATFORM_MONGODB_URL is not set: start FerretDB with `hack/ferretdb.sh up` and "
            '`eval "$(hack/ferretdb.sh env)"`',
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
async def ferretdb_version(mongodb_url: str) -> str:
    """FerretDB's version when the server is FerretDB (buildInfo says so), else ''."""
    client: AsyncIOMotorClient[dict[str, object]] = AsyncIOMotorClient(mongodb_url, serverSelectionTimeoutMS=5000)
    try:
        return str((await client.admin.command("buildInfo")).get("ferretdbVersion", ""))
    finally:
        client.close()


@pytest.fixture(scope="module")
async def database_url(mongodb_url: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A database of this test module's own, empty (MongoDB makes it on the first write), dropped
    afterwards."""
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    name = f"{module}_{uuid.uuid4().hex[:8]}"
    client: AsyncIOMotorClient[dict[str, object]] = AsyncIOMotorClient(mongodb_url, serverSelectionTimeoutMS=5000)
    try:
        assert name not in await client.list_database_names()
        yield with_database(mongodb_url, name)
    finally:
        await client.drop_database(name)
        client.close()


@pytest.fixture(scope="module")
async def mongo(database_url: str) -> AsyncIterator[AsyncIOMotorDatabase[dict[str, object]]]:
    """A plain client on this module's database, to look at what the service wrote."""
    client: AsyncIOMotorClient[dict[str, object]] = AsyncIOMotorClient(
        database_url, tz_aware=True, uuidRepresentation="standard", serverSelectionTimeoutMS=5000
    )
    yield client.get_default_database()
    client.close()


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(DATABASE_URL=database_url, DATABASE_ENGINE="mongo", SERVICE_NAME="catalog-data")


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_database_url() -> str:
    """A MongoDB URL on a local port where nothing listens: a database that is down."""
    return f"mongodb://catalog:secret@127.0.0.1:{free_port()}/catalog"


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
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://catalog-data") as client,
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
