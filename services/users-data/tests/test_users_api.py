"""The HTTP API as a client sees it: the app wired to a real PostgreSQL (migrated by its own
startup), called through httpx."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from users_data_testkit import UsersData, new_email

from platform_contract.testing import BAD_TELEGRAM_ACCOUNT_REQUESTS, RunningApp
from platform_contract.testing.data_service import DataApiContract
from users_data.config import Settings


@pytest.fixture(scope="module")
async def client(settings: Settings, running_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    # startup migrates the empty database; shutdown closes the pool
    async with running_app(settings) as client:
        yield client


async def create(client: httpx.AsyncClient, email: str, name: str = "Ann") -> dict[str, Any]:
    response = await client.post("/users", json={"email": email, "name": name})
    assert response.status_code == 201, response.text
    return response.json()


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


@pytest.mark.parametrize(("telegram_id", "body"), BAD_TELEGRAM_ACCOUNT_REQUESTS)
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


async def test_patch_changes_only_what_is_given(client: httpx.AsyncClient) -> None:
    user = await create(client, new_email(), name="Ann")

    response = await client.patch(f"/users/{user['id']}", json={"name": "Ann B."})

    assert response.status_code == 200
    assert response.json() == {**user, "name": "Ann B."}
    assert (await client.get(f"/users/{user['id']}")).json() == {**user, "name": "Ann B."}

    new = new_email()
    moved = await client.patch(f"/users/{user['id']}", json={"email": new.upper()})
    assert moved.json() == {**user, "name": "Ann B.", "email": new}


async def test_patch_with_an_invalid_email_is_422(client: httpx.AsyncClient) -> None:
    user = await create(client, new_email())

    response = await client.patch(f"/users/{user['id']}", json={"email": "nope"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "email"]
    assert (await client.get(f"/users/{user['id']}")).json() == user


class TestUsersApi(UsersData, DataApiContract):
    """What every data service's API does, for users."""

    unreachable = "ConnectionRefusedError"
    starting = "schema not migrated yet"
