"""PUT /users/by-telegram/{telegram_id}: the users-data user of a Telegram account, which a bot then
places orders with; users-data played by the local stand-in."""

from __future__ import annotations

import uuid

import pytest

from platform_contract.testing import BAD_TELEGRAM_ACCOUNT_REQUESTS

TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4737"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b8-01"


async def test_the_first_call_makes_the_user_and_the_next_finds_it(api, users_data):
    headers = {"X-Request-ID": "req-tg-1", "traceparent": TRACEPARENT}

    first = await api.put("/users/by-telegram/123456789", json={"name": " Ann Lee "}, headers=headers)
    again = await api.put("/users/by-telegram/123456789", json={"name": "Ann"})

    assert first.status_code == 201, first.text
    customer = first.json()
    assert set(customer) == {"id", "name", "telegram_id", "created_at"}
    assert customer["telegram_id"] == 123456789
    assert customer["name"] == "Ann Lee"
    uuid.UUID(customer["id"])  # users-data's id, not Telegram's
    assert first.headers["X-Request-ID"] == "req-tg-1"
    assert again.status_code == 200, again.text
    assert again.json() == customer

    call = users_data.received[0]
    assert (call["method"], call["path"]) == ("PUT", "/users/by-telegram/123456789")
    assert call["body"] == {"name": "Ann Lee"}
    assert call["headers"]["X-Request-ID"] == "req-tg-1"
    assert call["headers"]["traceparent"].split("-")[1] == TRACE_ID
    assert len(users_data.received) == 2


async def test_an_order_is_placed_with_the_users_id(api, users_data, events):
    customer = (await api.put("/users/by-telegram/42", json={"name": "Ann"})).json()

    placed = await api.post(
        "/orders",
        json={"user_id": customer["id"], "item": "tea", "quantity": 1},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    by_telegram_id = await api.post(
        "/orders", json={"user_id": "42", "item": "tea", "quantity": 1}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )

    assert placed.status_code == 201, placed.text
    assert placed.json()["user_id"] == customer["id"]
    assert by_telegram_id.status_code == 422  # what the bot used to send: users-data knows no such user
    (event,) = await events.drain()
    assert event["body"]["user_id"] == customer["id"]


@pytest.mark.parametrize(("telegram_id", "body"), BAD_TELEGRAM_ACCOUNT_REQUESTS)
async def test_an_invalid_id_or_body_is_422_without_asking_users_data(api, users_data, telegram_id, body):
    response = await api.put(f"/users/by-telegram/{telegram_id}", json=body)

    assert response.status_code == 422, response.text
    assert users_data.received == []


async def test_a_name_users_data_refuses_is_422_with_its_reason(api, users_data):
    users_data.answer = (422, [{"loc": ["body", "name"], "msg": "longer than 200 characters"}])

    response = await api.put("/users/by-telegram/42", json={"name": "Ann"})

    assert response.status_code == 422
    assert "longer than 200 characters" in response.json()["detail"]


@pytest.mark.parametrize("status", [500, 404])
async def test_an_unexpected_answer_of_users_data_is_503(api, users_data, status):
    users_data.answer = (status, "boom")

    response = await api.put("/users/by-telegram/42", json={"name": "Ann"})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


async def test_users_data_down_is_503_and_up_again_works(api, users_data):
    await users_data.stop()
    down = await api.put("/users/by-telegram/42", json={"name": "Ann"})
    await users_data.start()  # same port
    up = await api.put("/users/by-telegram/42", json={"name": "Ann"})

    assert down.status_code == 503
    assert down.json()["detail"].startswith("users-data unreachable")
    assert up.status_code == 201
