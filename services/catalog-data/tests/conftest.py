"""Fixtures shared by the catalog-data tests.

Unit tests need nothing. Everything else runs against a real MongoDB-wire server given by
PLATFORM_MONGODB_URL (FerretDB: `hack/ferretdb.sh up` then `eval "$(hack/ferretdb.sh env)"`);
each test module gets a database of its own, named for it and made unique per run, and drops it
afterwards, so runs never see each other's documents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from catalog_data_testkit import CatalogData
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase

from platform_contract import testing

# The fixtures every data service's suite has.
from platform_contract.testing.data_service import (  # noqa: F401
    http_port,
    json_logs,
    running_app,
    settings,
    unreachable_database_url,
)


def with_database(url: str, name: str) -> str:
    """The MongoDB URL `url` pointing at the database `name` (its options kept)."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def mongodb_url() -> str:
    hint = 'start FerretDB with `hack/ferretdb.sh up` and `eval "$(hack/ferretdb.sh env)"`'
    return testing.required_env(("PLATFORM_MONGODB_URL",), hint=hint)["PLATFORM_MONGODB_URL"]


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
    name = testing.database_name(request)
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


@pytest.fixture(scope="session")
def data_service() -> CatalogData:
    return CatalogData()
