"""The HTTP API as a client sees it: the app wired to a real MongoDB-wire server (FerretDB here,
its indexes made by its own startup), called through httpx."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog_data.adapters.database import ITEMS, Database
from catalog_data.config import Settings
from platform_contract.telemetry.logs import JsonFormatter

if TYPE_CHECKING:  # conftest is pytest's to import; only its type is needed here
    from conftest import RunningApp

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
async def client(settings: Settings, running_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    # startup creates the indexes in the empty database; shutdown closes the client
    async with running_app(settings) as client:
        yield client


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The service's log lines, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("catalog-data"))
    logger = logging.getLogger("catalog_data")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def new_sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:12].upper()}"


async def create(client: httpx.AsyncClient, sku: str, name: str = "Mug", price: Any = "9.99") -> dict[str, Any]:
    response = await client.post("/items", json={"sku": sku, "name": name, "price": price})
    assert response.status_code == 201, response.text
    return response.json()


def counter(metrics_text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


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


async def test_duplicate_sku_is_409(client: httpx.AsyncClient) -> None:
    sku = new_sku()
    await create(client, sku)

    response = await client.post("/items", json={"sku": sku.lower(), "name": "Another", "price": 1})

    assert response.status_code == 409
    assert response.json() == {"detail": f"an item with sku {sku} already exists"}
    assert len((await client.get("/items", params={"sku": sku})).json()) == 1


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


async def test_get_by_id(client: httpx.AsyncClient) -> None:
    item = await create(client, new_sku())

    response = await client.get(f"/items/{item['id']}")

    assert response.status_code == 200
    assert response.json() == item


async def test_unknown_id_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    response = await client.get(f"/items/{missing}")

    assert response.status_code == 404
    assert response.json() == {"detail": f"no item with id {missing}"}


async def test_malformed_id_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/items/42")).status_code == 422


async def test_list_by_sku_finds_the_one_item_in_any_case(client: httpx.AsyncClient) -> None:
    sku = new_sku()
    item = await create(client, sku)
    await create(client, new_sku())

    found = await client.get("/items", params={"sku": sku.lower()})
    not_found = await client.get("/items", params={"sku": new_sku()})

    assert found.status_code == 200
    assert found.json() == [item]
    assert not_found.json() == []


async def test_list_without_sku_pages_through_everything(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await create(client, new_sku())

    everything = (await client.get("/items", params={"limit": 500})).json()
    page = (await client.get("/items", params={"limit": 2, "offset": 1})).json()

    assert len(everything) >= 3
    assert page == everything[1:3]
    assert (await client.get("/items", params={"limit": 0})).status_code == 422
    assert (await client.get("/items", params={"limit": 501})).status_code == 422


async def test_patch_changes_only_what_is_given(client: httpx.AsyncClient) -> None:
    item = await create(client, new_sku(), name="Mug", price="1.00")

    response = await client.patch(f"/items/{item['id']}", json={"price": "1.25"})

    assert response.status_code == 200
    assert response.json() == {**item, "price": "1.25"}
    assert (await client.get(f"/items/{item['id']}")).json() == {**item, "price": "1.25"}

    sku = new_sku()
    moved = await client.patch(f"/items/{item['id']}", json={"sku": sku.lower(), "name": "Big mug"})
    assert moved.json() == {**item, "price": "1.25", "sku": sku, "name": "Big mug"}


async def test_patch_to_a_sku_in_use_is_409_and_changes_nothing(client: httpx.AsyncClient) -> None:
    mug, cup = await create(client, new_sku()), await create(client, new_sku(), name="Cup")

    response = await client.patch(f"/items/{cup['id']}", json={"sku": mug["sku"], "name": "Renamed"})

    assert response.status_code == 409
    assert response.json() == {"detail": f"an item with sku {mug['sku']} already exists"}
    assert (await client.get(f"/items/{cup['id']}")).json() == cup


async def test_patch_of_an_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"/items/{uuid.uuid4()}", json={"name": "Nobody"})
    assert response.status_code == 404


@pytest.mark.parametrize(("body", "field"), [({"price": "-1"}, "price"), ({"sku": "a b"}, "sku"), ({"id": "x"}, "id")])
async def test_patch_with_an_invalid_field_is_422_and_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    item = await create(client, new_sku())

    response = await client.patch(f"/items/{item['id']}", json={"name": "Changed", **body})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert (await client.get(f"/items/{item['id']}")).json() == item


async def test_delete_then_the_item_is_gone(client: httpx.AsyncClient) -> None:
    item = await create(client, new_sku())

    response = await client.delete(f"/items/{item['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/items/{item['id']}")).status_code == 404
    assert (await client.delete(f"/items/{item['id']}")).status_code == 404
    # the SKU is free again
    assert (await client.post("/items", json={"sku": item["sku"], "name": "Mug", "price": 1})).status_code == 201


async def test_request_id_is_echoed_and_logged(client: httpx.AsyncClient, json_logs: Callable) -> None:
    response = await client.get(f"/items/{uuid.uuid4()}", headers={"X-Request-ID": "req-from-orders-api-1"})

    assert response.headers["x-request-id"] == "req-from-orders-api-1"
    access = [e for e in json_logs() if e["logger"] == "catalog_data.access"]
    assert access[-1]["request_id"] == "req-from-orders-api-1"
    assert access[-1]["route"] == "/items/{item_id}"
    assert access[-1]["status"] == 404


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")

    generated = first.headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert second.headers["x-request-id"] != generated


async def test_a_request_id_that_is_not_sane_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert response.headers["x-request-id"] != "x" * 500


async def test_the_callers_trace_continues_in_the_logs(client: httpx.AsyncClient, json_logs: Callable) -> None:
    traceparent = f"00-{TRACE_ID}-b7ad6b7169203331-01"
    await client.get("/items", params={"sku": new_sku()}, headers={"traceparent": traceparent})

    access = [e for e in json_logs() if e["logger"] == "catalog_data.access"]
    assert access[-1]["trace_id"] == TRACE_ID


async def test_request_id_header_name_comes_from_settings(settings: Settings, running_app: RunningApp) -> None:
    custom = settings.model_copy(update={"request_id_header": "X-Correlation-ID"})
    async with running_app(custom) as client:
        response = await client.get("/health", headers={"X-Correlation-ID": "corr-7"})

    assert response.headers["x-correlation-id"] == "corr-7"
    assert "x-request-id" not in response.headers


async def test_health_and_ready_with_the_database_up(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    ready = await client.get("/ready")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "database": "ok"})


@pytest.mark.parametrize(("migrate_on_startup", "reason"), [(True, "indexes not created yet"), (False, "")])
async def test_ready_is_false_when_the_database_is_unreachable(
    unreachable_database_url: str, running_app: RunningApp, migrate_on_startup: bool, reason: str
) -> None:
    settings = Settings(
        DATABASE_URL=unreachable_database_url, MIGRATE_ON_STARTUP=migrate_on_startup, DB_CONNECT_TIMEOUT_SECONDS=0.3
    )
    async with running_app(settings, wait_ready=False) as client:
        for _ in range(100):  # until the first attempt to create the indexes (or the ping) has failed
            ready = await client.get("/ready")
            if "refused" in ready.text:
                break
            await asyncio.sleep(0.1)
        health = await client.get("/health")

    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["database"].startswith(reason)
    assert "Connection refused" in ready.json()["database"]
    assert "secret" not in ready.text
    assert health.status_code == 200  # alive, just not ready: no restart for a database outage


async def test_a_request_while_the_database_is_down_is_503_with_the_request_id(
    unreachable_database_url: str, running_app: RunningApp, json_logs: Callable
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


async def test_metrics_count_requests_by_route_and_status(client: httpx.AsyncClient) -> None:
    before = counter((await client.get("/metrics")).text, "http_requests_total", route="/items/{item_id}", status="404")
    await client.get(f"/items/{uuid.uuid4()}")
    await client.get(f"/items/{uuid.uuid4()}")
    await client.get("/no/such/path")

    metrics = await client.get("/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    after = counter(metrics.text, "http_requests_total", route="/items/{item_id}", status="404")
    assert after == before + 2
    assert counter(metrics.text, "http_requests_total", route="unmatched", status="404") >= 1
    assert counter(metrics.text, "http_request_duration_seconds_count", method="GET", route="/items/{item_id}") >= 2
    assert counter(metrics.text, "process_open_fds") > 0
