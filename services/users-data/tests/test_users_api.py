"""The HTTP API as a client sees it: the app wired to a real PostgreSQL (migrated by its own
startup), called through httpx."""

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
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine

from platform_contract.telemetry.logs import JsonFormatter
from users_data.config import Settings

if TYPE_CHECKING:  # conftest is pytest's to import; only its type is needed here
    from conftest import RunningApp

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
async def client(settings: Settings, running_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    # startup migrates the empty database; shutdown closes the pool
    async with running_app(settings) as client:
        yield client


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The service's log lines, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("users-data"))
    logger = logging.getLogger("users_data")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.org"


async def create(client: httpx.AsyncClient, email: str, name: str = "Ann") -> dict[str, Any]:
    response = await client.post("/users", json={"email": email, "name": name})
    assert response.status_code == 201, response.text
    return response.json()


def counter(metrics_text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_startup_migrated_the_empty_database(client: httpx.AsyncClient, database_url: str) -> None:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
    await engine.dispose()
    assert version == "0002"


async def test_create_returns_the_user_and_where_it_lives(client: httpx.AsyncClient) -> None:
    email = new_email()
    response = await client.post("/users", json={"email": email.upper(), "name": "  Ann  Lee "})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "name", "created_at", "telegram_id"}
    assert body["telegram_id"] is None
    assert body["email"] == email
    assert body["name"] == "Ann Lee"
    assert response.headers["location"] == f"/users/{body['id']}"
    assert (await client.get(response.headers["location"])).json() == body


async def test_duplicate_email_is_409(client: httpx.AsyncClient) -> None:
    email = new_email()
    await create(client, email)

    response = await client.post("/users", json={"email": email.upper(), "name": "Someone else"})

    assert response.status_code == 409
    assert response.json() == {"detail": f"a user with email {email} already exists"}
    assert len((await client.get("/users", params={"email": email})).json()) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address", "name": "Ann"}, "email"),
        ({"email": "ann@example.org", "name": "   "}, "name"),
        ({"email": "ann@example.org"}, "name"),
        ({"email": "ann@example.org", "name": "Ann", "role": "admin"}, "role"),
    ],
)
async def test_invalid_user_is_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    response = await client.post("/users", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


def new_telegram_id() -> int:
    return uuid.uuid4().int % 10**12 + 1


async def test_put_by_telegram_makes_the_user_once_then_finds_it(client: httpx.AsyncClient) -> None:
    telegram_id = new_telegram_id()

    first = await client.put(f"/users/by-telegram/{telegram_id}", json={"name": "  Ann  Lee "})
    again = await client.put(f"/users/by-telegram/{telegram_id}", json={"name": "Someone Else"})

    assert first.status_code == 201, first.text
    user = first.json()
    assert user["telegram_id"] == telegram_id
    assert user["email"] is None
    assert user["name"] == "Ann Lee"
    assert first.headers["location"] == f"/users/{user['id']}"
    # found, not made again; the name it was made with is kept
    assert again.status_code == 200, again.text
    assert again.json() == user
    assert "location" not in again.headers
    assert (await client.get(f"/users/{user['id']}")).json() == user


async def test_put_by_telegram_for_another_account_is_another_user(client: httpx.AsyncClient) -> None:
    one = await client.put(f"/users/by-telegram/{new_telegram_id()}", json={"name": "Ann"})
    two = await client.put(f"/users/by-telegram/{new_telegram_id()}", json={"name": "Ann"})

    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]


async def test_concurrent_puts_for_one_telegram_account_make_one_user(client: httpx.AsyncClient) -> None:
    telegram_id = new_telegram_id()

    responses = await asyncio.gather(
        *(client.put(f"/users/by-telegram/{telegram_id}", json={"name": f"R{i}"}) for i in range(5))
    )

    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1


@pytest.mark.parametrize(
    ("telegram_id", "body"),
    [
        ("0", {"name": "Ann"}),
        ("-5", {"name": "Ann"}),
        (str(2**63), {"name": "Ann"}),
        ("ann", {"name": "Ann"}),
        ("42", {"name": "   "}),
        ("42", {}),
        ("42", {"name": "Ann", "email": "ann@example.org"}),
    ],
)
async def test_put_by_telegram_refuses_a_bad_id_or_name(
    client: httpx.AsyncClient, telegram_id: str, body: dict[str, str]
) -> None:
    response = await client.put(f"/users/by-telegram/{telegram_id}", json=body)

    assert response.status_code == 422, response.text


async def test_a_telegram_user_can_be_given_an_email_later(client: httpx.AsyncClient) -> None:
    user = (await client.put(f"/users/by-telegram/{new_telegram_id()}", json={"name": "Ann"})).json()
    email = new_email()

    patched = await client.patch(f"/users/{user['id']}", json={"email": email})

    assert patched.status_code == 200
    assert patched.json() == {**user, "email": email}


async def test_get_by_id(client: httpx.AsyncClient) -> None:
    user = await create(client, new_email())

    response = await client.get(f"/users/{user['id']}")

    assert response.status_code == 200
    assert response.json() == user


async def test_unknown_id_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    response = await client.get(f"/users/{missing}")

    assert response.status_code == 404
    assert response.json() == {"detail": f"no user with id {missing}"}


async def test_malformed_id_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users/42")).status_code == 422


async def test_list_by_email_finds_the_one_user_in_any_case(client: httpx.AsyncClient) -> None:
    email = new_email()
    user = await create(client, email)
    await create(client, new_email())

    found = await client.get("/users", params={"email": email.upper()})
    not_found = await client.get("/users", params={"email": new_email()})

    assert found.status_code == 200
    assert found.json() == [user]
    assert not_found.json() == []


async def test_list_without_email_pages_through_everyone(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await create(client, new_email())

    everyone = (await client.get("/users", params={"limit": 500})).json()
    page = (await client.get("/users", params={"limit": 2, "offset": 1})).json()

    assert len(everyone) >= 3
    assert page == everyone[1:3]
    assert (await client.get("/users", params={"limit": 0})).status_code == 422


async def test_patch_changes_only_what_is_given(client: httpx.AsyncClient) -> None:
    user = await create(client, new_email(), name="Ann")

    response = await client.patch(f"/users/{user['id']}", json={"name": "Ann B."})

    assert response.status_code == 200
    assert response.json() == {**user, "name": "Ann B."}
    assert (await client.get(f"/users/{user['id']}")).json() == {**user, "name": "Ann B."}

    new = new_email()
    moved = await client.patch(f"/users/{user['id']}", json={"email": new.upper()})
    assert moved.json() == {**user, "name": "Ann B.", "email": new}


async def test_patch_to_an_email_in_use_is_409_and_changes_nothing(client: httpx.AsyncClient) -> None:
    ann, bob = await create(client, new_email()), await create(client, new_email(), name="Bob")

    response = await client.patch(f"/users/{bob['id']}", json={"email": ann["email"], "name": "Bobby"})

    assert response.status_code == 409
    assert (await client.get(f"/users/{bob['id']}")).json() == bob


async def test_patch_of_an_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"/users/{uuid.uuid4()}", json={"name": "Nobody"})
    assert response.status_code == 404


async def test_patch_with_an_invalid_email_is_422(client: httpx.AsyncClient) -> None:
    user = await create(client, new_email())

    response = await client.patch(f"/users/{user['id']}", json={"email": "nope"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "email"]
    assert (await client.get(f"/users/{user['id']}")).json() == user


async def test_delete_then_the_user_is_gone(client: httpx.AsyncClient) -> None:
    user = await create(client, new_email())

    response = await client.delete(f"/users/{user['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/users/{user['id']}")).status_code == 404
    assert (await client.delete(f"/users/{user['id']}")).status_code == 404
    # the address is free again
    assert (await client.post("/users", json={"email": user["email"], "name": "Ann"})).status_code == 201


async def test_request_id_is_echoed_and_logged(client: httpx.AsyncClient, json_logs: Callable) -> None:
    response = await client.get(f"/users/{uuid.uuid4()}", headers={"X-Request-ID": "req-from-orders-api-1"})

    assert response.headers["x-request-id"] == "req-from-orders-api-1"
    access = [e for e in json_logs() if e["logger"] == "users_data.access"]
    assert access[-1]["request_id"] == "req-from-orders-api-1"
    assert access[-1]["route"] == "/users/{user_id}"
    assert access[-1]["status"] == 404


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient, json_logs: Callable) -> None:
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
    await client.get("/users", params={"email": new_email()}, headers={"traceparent": traceparent})

    access = [e for e in json_logs() if e["logger"] == "users_data.access"]
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


@pytest.mark.parametrize(("migrate_on_startup", "reason"), [(True, "schema not migrated yet"), (False, "")])
async def test_ready_is_false_when_the_database_is_unreachable(
    unreachable_database_url: str, running_app: RunningApp, migrate_on_startup: bool, reason: str
) -> None:
    settings = Settings(DATABASE_URL=unreachable_database_url, MIGRATE_ON_STARTUP=migrate_on_startup)
    async with running_app(settings, wait_ready=False) as client:
        await asyncio.sleep(0.2)  # the first migration attempt has failed by now
        ready = await client.get("/ready")
        health = await client.get("/health")

    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["database"].startswith(reason)
    assert "ConnectionRefusedError" in ready.json()["database"]
    assert "secret" not in ready.text
    assert health.status_code == 200  # alive, just not ready: no restart for a database outage


async def test_metrics_count_requests_by_route_and_status(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    user = await create(client, new_email())
    await client.get(f"/users/{user['id']}")
    await client.get(f"/users/{uuid.uuid4()}")
    await client.get(f"/users/{uuid.uuid4()}")
    await client.get("/no/such/route")

    response = await client.get("/metrics")
    after = response.text

    assert response.headers["content-type"].startswith("text/plain")

    def delta(**labels: str) -> float:
        return counter(after, "http_requests_total", **labels) - counter(before, "http_requests_total", **labels)

    assert delta(method="POST", route="/users", status="201") == 1
    assert delta(method="GET", route="/users/{user_id}", status="200") == 1
    assert delta(method="GET", route="/users/{user_id}", status="404") == 2
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert counter(after, "http_request_duration_seconds_count", route="/users/{user_id}", status="404") >= 2
    assert 'route="/users/' + user["id"] not in after  # one series per route, not per user
