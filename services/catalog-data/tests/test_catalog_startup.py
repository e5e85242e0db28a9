"""Starting up: the indexes at startup and through `python -m catalog_data migrate`, and the
service as the container runs it (real processes, a real MongoDB-wire server)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from catalog_data_testkit import CatalogData
from motor.motor_asyncio import AsyncIOMotorClient

from catalog_data.adapters.database import ITEMS, Database
from catalog_data.config import Settings
from platform_contract.testing import RunningApp, run_module
from platform_contract.testing.data_service import DataProcessContract

REPO = Path(__file__).resolve().parents[3]
FERRETDB = REPO / "hack" / "ferretdb.sh"


def service_env(**overrides: str) -> dict[str, str]:
    return CatalogData().env(**overrides)


async def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await run_module("catalog_data", *args, env=env)


async def index_names(db: Database) -> set[str]:
    return {index["name"] async for index in db[ITEMS].list_indexes()}


@pytest.fixture
async def unindexed_app_client(settings: Settings, running_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings.model_copy(update={"migrate_on_startup": False})) as client:
        yield client


async def test_migrate_command_creates_the_missing_indexes(
    database_url: str, mongo: Database, unindexed_app_client: httpx.AsyncClient
) -> None:
    # MIGRATE_ON_STARTUP=false and nobody created the indexes: nothing refuses a duplicate SKU yet
    client = unindexed_app_client
    assert "sku_unique" not in await index_names(mongo)

    result = await run("migrate", env=service_env(DATABASE_URL=database_url))

    assert result.returncode == 0, result.stderr
    assert "indexes of items: sku_unique, created_at_id" in result.stderr
    assert {"sku_unique", "created_at_id"} <= await index_names(mongo)
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    assert (await client.post("/items", json={"sku": sku, "name": "Mug", "price": 1})).status_code == 201
    assert (await client.post("/items", json={"sku": sku, "name": "Mug", "price": 1})).status_code == 409


async def test_migrate_again_is_a_no_op(database_url: str, mongo: Database) -> None:
    env = service_env(DATABASE_URL=database_url)
    await run("migrate", env=env)
    before = await mongo[ITEMS].index_information()

    again = await run("migrate", env=env)

    assert again.returncode == 0, again.stderr
    assert await mongo[ITEMS].index_information() == before


async def test_migrate_with_the_database_down_fails_with_the_reason(unreachable_database_url: str) -> None:
    result = await run(
        "migrate", env=service_env(DATABASE_URL=unreachable_database_url, DB_CONNECT_TIMEOUT_SECONDS="0.5")
    )

    assert result.returncode == 1
    assert "creating the indexes failed: ServerSelectionTimeoutError" in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def late_server(http_port: int) -> tuple[dict[str, str], str]:
    """A second FerretDB of its own (hack/ferretdb.sh, another instance name and port), not started
    yet; stopped and deleted afterwards."""
    name = f"catalog-late-{uuid.uuid4().hex[:6]}"
    return {**os.environ, "BACKENDS_NAME": name, "FERRETDB_PORT": str(http_port)}, name


async def test_a_database_that_appears_late_is_used_without_a_restart(
    late_server: tuple[dict[str, str], str], running_app: RunningApp
) -> None:
    env, _ = late_server
    url = f"mongodb://127.0.0.1:{env['FERRETDB_PORT']}/late"
    settings = Settings(DATABASE_URL=url, DB_CONNECT_TIMEOUT_SECONDS=0.5)
    try:
        async with running_app(settings, wait_ready=False) as client:
            for _ in range(100):  # until the first attempt to create the indexes has failed
                waiting = await client.get("/ready")
                if "refused" in waiting.text:
                    break
                await asyncio.sleep(0.1)
            assert waiting.status_code == 503
            assert "indexes not created yet" in waiting.json()["database"]
            assert "Connection refused" in waiting.json()["database"]
            assert (await client.get("/health")).status_code == 200

            started = await asyncio.create_subprocess_exec(str(FERRETDB), "up", env=env, stderr=subprocess.PIPE)
            _, err = await asyncio.wait_for(started.communicate(), 120)
            assert started.returncode == 0, err.decode()

            for _ in range(150):  # retries back off from 1 s; the next attempt finds it
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            created = await client.post("/items", json={"sku": "LATE-1", "name": "Late", "price": 1})
            duplicate = await client.post("/items", json={"sku": "late-1", "name": "Late", "price": 1})
        assert created.status_code == 201
        assert duplicate.status_code == 409  # the unique index was made once the server was there
        mongo: AsyncIOMotorClient[dict[str, object]] = AsyncIOMotorClient(url, serverSelectionTimeoutMS=5000)
        try:
            assert "sku_unique" in await index_names(mongo.get_default_database())
        finally:
            mongo.close()
    finally:
        stopped = await asyncio.create_subprocess_exec(
            str(FERRETDB), "down", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await asyncio.wait_for(stopped.wait(), 60)


class TestCatalogProcess(CatalogData, DataProcessContract):
    """catalog-data as its container runs it, like every data service."""

    bad_settings: ClassVar[dict[str, dict[str, str]]] = {
        "DATABASE_URL is not set": {"DATABASE_URL": ""},
        "must be a MongoDB URL": {"DATABASE_URL": "postgresql://u:p@db/users"},
        "names no database": {"DATABASE_URL": "mongodb://u:p@db:27017"},
        "MongoDB only": {"DATABASE_URL": "mongodb://u:p@db/catalog", "DATABASE_ENGINE": "postgres"},
    }
