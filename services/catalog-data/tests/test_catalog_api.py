"""The HTTP API as a client sees it: the app wired to a real MongoDB-wire server (FerretDB here,
its indexes made by its own startup), called through httpx."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import pytest
from catalog_data_testkit import CatalogData, new_sku

from catalog_data.adapters.database import ITEMS, Database
from catalog_data.config import Settings
from platform_contract.testing import JsonLogs, RunningApp
from platform_contract.testing.data_service import DataApiContract


@pytest.fixture(scope="module")
async def client(settings: Settings, running_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    # startup creates the indexes in the empty database; shutdown closes the client
    async with running_app(settings) as client:
        yield client


async def create(client: httpx.AsyncClient, sku: str, name: str = "Mug", price: Any = "9.99") -> dict[str, Any]:
    response = await client.post("/items", json={"sku": sku, "name": name, "price": price})
    assert response.status_code == 201, response.text
    return response.json()


async def test_startup_created_the_indexes(client: httpx.AsyncClient, mongo: Database) -> None:
    info = await mongo[ITEMS].index_information()
    assert info["sku_unique"]["unique"] is True


async def test_create_returns_the_item_and_where_it_lives(client: httpx.AsyncClient) -> None:
    sku = new_sku()
    response = await client.post("/items", json={"sku": f" {sku.lower()} ", "name": "  Blue   mug ", "price": 12.5})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "sku", "name", "price", "created_at"}
    assert (body["sku"], body["name"], body["price"]) == (sku, "Blue mug", "12.50")
    assert uuid.UUID(body["id"]).version == 4
    assert response.headers["location"] == f"/items/{body['id']}"
    assert (await client.get(response.headers["location"])).json() == body


async def test_the_price_is_exact_as_a_string_or_a_number(client: httpx.AsyncClient) -> None:
    assert (await create(client, new_sku(), price="0.10"))["price"] == "0.10"
    assert (await create(client, new_sku(), price=0.1))["price"] == "0.10"
    assert (await create(client, new_sku(), price=3))["price"] == "3.00"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sku": "has space", "name": "Mug", "price": 1}, "sku"),
        ({"sku": "", "name": "Mug", "price": 1}, "sku"),
        ({"sku": "A-1", "name": "   ", "price": 1}, "name"),
        ({"sku": "A-1", "name": "Mug", "price": -1}, "price"),
        ({"sku": "A-1", "name": "Mug", "price": "1.999"}, "price"),
        ({"sku": "A-1", "name": "Mug", "price": "cheap"}, "price"),
        ({"sku": "A-1", "name": "Mug"}, "price"),
        ({"sku": "A-1", "price": 1}, "name"),
        ({"sku": "A-1", "name": "Mug", "price": 1, "stock": 3}, "stock"),
    ],
)
async def test_invalid_item_is_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/items", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]


async def test_patch_changes_only_what_is_given(client: httpx.AsyncClient) -> None:
    item = await create(client, new_sku(), name="Mug", price="1.00")

    response = await client.patch(f"/items/{item['id']}", json={"price": "1.25"})

    assert response.status_code == 200
    assert response.json() == {**item, "price": "1.25"}
    assert (await client.get(f"/items/{item['id']}")).json() == {**item, "price": "1.25"}

    sku = new_sku()
    moved = await client.patch(f"/items/{item['id']}", json={"sku": sku.lower(), "name": "Big mug"})
    assert moved.json() == {**item, "price": "1.25", "sku": sku, "name": "Big mug"}


@pytest.mark.parametrize(("body", "field"), [({"price": "-1"}, "price"), ({"sku": "a b"}, "sku"), ({"id": "x"}, "id")])
async def test_patch_with_an_invalid_field_is_422_and_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    item = await create(client, new_sku())

    response = await client.patch(f"/items/{item['id']}", json={"name": "Changed", **body})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert (await client.get(f"/items/{item['id']}")).json() == item


async def test_a_request_while_the_database_is_down_is_503_with_the_request_id(
    unreachable_database_url: str, running_app: RunningApp, json_logs: JsonLogs
) -> None:
    settings = Settings(DATABASE_URL=unreachable_database_url, MIGRATE_ON_STARTUP=False, DB_CONNECT_TIMEOUT_SECONDS=0.3)
    async with running_app(settings, wait_ready=False) as client:
        response = await client.get(f"/items/{uuid.uuid4()}", headers={"X-Request-ID": "during-outage"})

    assert response.status_code == 503
    assert response.json() == {"detail": "database unavailable"}
    assert response.headers["x-request-id"] == "during-outage"
    assert response.headers["retry-after"] == "1"
    warning = [e for e in json_logs() if e["logger"] == "catalog_data.api"][-1]
    assert warning["level"] == "WARNING" and warning["request_id"] == "during-outage"
    assert "secret" not in warning["message"]


class TestCatalogApi(CatalogData, DataApiContract):
    """What every data service's API does, for catalog items."""

    unreachable = "Connection refused"
    starting = "indexes not created yet"
    unreachable_settings: ClassVar[dict[str, Any]] = {"DB_CONNECT_TIMEOUT_SECONDS": 0.3}
