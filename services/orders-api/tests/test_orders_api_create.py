"""POST /orders and GET /orders/{id} against real Redis and RabbitMQ, provisioned as the operator
does, with users-data played by a local stand-in."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from orders_testkit import KNOWN_USER_ID, unused_port
from redis.exceptions import NoPermissionError

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
ORDER = {"user_id": KNOWN_USER_ID, "item": "coffee beans", "quantity": 2}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _trace_of(traceparent: str) -> tuple[str, str]:
    version, trace_id, parent_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, parent_id


async def test_an_order_is_created_stored_and_announced(api, events, users_data, platform):
    resp = await api.post(
        "/orders", json=ORDER, headers={**_key(), "X-Request-ID": "req-create-1", "traceparent": TRACEPARENT}
    )

    assert resp.status_code == 201, resp.text
    order = resp.json()
    assert {k: order[k] for k in ORDER} == ORDER
    assert resp.headers["Location"] == f"/orders/{order['id']}"
    assert resp.headers["X-Request-ID"] == "req-create-1"
    assert "Idempotent-Replayed" not in resp.headers

    fetched = await api.get(f"/orders/{order['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == order

    # users-data was asked, with the request id and the caller's trace carried along.
    (call,) = users_data.received
    assert call["path"] == f"/users/{KNOWN_USER_ID}"
    assert call["headers"]["X-Request-ID"] == "req-create-1"
    trace_id, parent = _trace_of(call["headers"]["traceparent"])
    assert trace_id == TRACE_ID
    assert parent != CALLER_SPAN_ID  # orders-api's own span sits in between

    (event,) = await events.drain()
    assert event["exchange"] == platform.env["RABBITMQ_PUBLISHES"].split(",")[0] == f"{platform.svc.namespace}.orders"
    assert event["routing_key"] == "order.created"
    assert event["body"] == {
        "order_id": order["id"],
        "user_id": KNOWN_USER_ID,
        "item": "coffee beans",
        "quantity": 2,
        "created_at": order["created_at"].replace("+00:00", "Z"),
        "schema_version": 1,
    }
    props = event["properties"]
    assert props["content_type"] == "application/json"
    assert props["delivery_mode"] == 2  # persistent
    assert props["message_id"] == order["id"]
    assert props["headers"]["x-request-id"] == "req-create-1"
    assert _trace_of(props["headers"]["traceparent"])[0] == TRACE_ID


async def test_a_repeated_idempotency_key_replays_the_response_and_publishes_once(api, events, platform):
    headers = _key()
    first = await api.post("/orders", json=ORDER, headers=headers)
    second = await api.post("/orders", json=ORDER, headers=headers)
    third = await api.post("/orders", json={**ORDER, "item": " coffee beans "}, headers=headers)  # same, once trimmed

    assert first.status_code == second.status_code == third.status_code == 201
    assert second.json() == third.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]

    published = await events.drain()
    assert [m["body"]["order_id"] for m in published] == [first.json()["id"]]
    orders = [k async for k in platform.redis_admin.scan_iter(match=f"{platform.prefix}:orders:*")]
    assert f"{platform.prefix}:orders:{first.json()['id']}" in orders
    # The response is kept for IDEMPOTENCY_TTL_SECONDS (the sample's idempotencyTTLSeconds: 3600).
    ttl = await platform.redis_admin.ttl(f"{platform.prefix}:idem:{headers['Idempotency-Key']}")
    assert int(platform.env["IDEMPOTENCY_TTL_SECONDS"]) == 3600
    assert 3590 <= ttl <= 3600


async def test_concurrent_requests_with_one_key_place_one_order(api, events, users_data):
    headers = _key()
    users_data.delay = 0.3  # the first request holds the key while users-data answers

    first, second = await asyncio.gather(
        api.post("/orders", json=ORDER, headers=headers),
        api.post("/orders", json=ORDER, headers=headers),
    )

    assert sorted([first.status_code, second.status_code]) == [201, 409]
    busy = first if first.status_code == 409 else second
    assert "still being processed" in busy.json()["detail"]
    assert busy.headers["Retry-After"] == "1"
    placed = first if first.status_code == 201 else second
    later = await api.post("/orders", json=ORDER, headers=headers)
    assert later.status_code == 201
    assert later.json() == placed.json()
    assert [m["body"]["order_id"] for m in await events.drain()] == [placed.json()["id"]]


async def test_a_key_reused_for_another_order_is_refused(api, events):
    headers = _key()
    assert (await api.post("/orders", json=ORDER, headers=headers)).status_code == 201
    resp = await api.post("/orders", json={**ORDER, "quantity": 5}, headers=headers)

    assert resp.status_code == 422
    assert "already used with a different request body" in resp.json()["detail"]
    assert len(await events.drain()) == 1


@pytest.mark.parametrize(
    "user_id",
    ["0f5b8a62-1c1e-4c1a-8d55-2f0f3c6a7b90", "nobody"],
    ids=["users-data-404", "users-data-422-not-a-uuid"],
)
async def test_an_unknown_user_gives_422_and_no_order(api, events, platform, users_data, user_id):
    headers = _key()
    before = {k async for k in platform.redis_admin.scan_iter(match=f"{platform.prefix}:*")}
    resp = await api.post("/orders", json={**ORDER, "user_id": user_id}, headers=headers)

    assert resp.status_code == 422
    assert resp.json() == {"detail": f"user {user_id} does not exist in users-data"}
    assert [c["path"] for c in users_data.received] == [f"/users/{user_id}"]
    assert await events.drain() == []
    # Nothing kept: not the order, and not the key (the user may exist by the next try).
    assert {k async for k in platform.redis_admin.scan_iter(match=f"{platform.prefix}:*")} == before


async def test_users_data_down_gives_503_and_the_same_key_works_once_it_is_back(api, events, users_data):
    headers = _key()
    await users_data.stop()
    down = await api.post("/orders", json=ORDER, headers=headers)

    assert down.status_code == 503
    assert down.json()["detail"].startswith("users-data unreachable")
    assert down.headers["Retry-After"] == "5"
    assert await events.drain() == []

    await users_data.start()  # same port
    back = await api.post("/orders", json=ORDER, headers=headers)
    assert back.status_code == 201
    assert "Idempotent-Replayed" not in back.headers
    assert [m["body"]["order_id"] for m in await events.drain()] == [back.json()["id"]]


async def test_rabbitmq_down_gives_503_and_keeps_no_order(start_app, platform):
    api = await start_app(RABBITMQ_URL=f"amqp://nobody:nothing@127.0.0.1:{unused_port()}/")
    before = {k async for k in platform.redis_admin.scan_iter(match=f"{platform.prefix}:*")}

    resp = await api.post("/orders", json=ORDER, headers=_key())

    assert resp.status_code == 503
    assert resp.json()["detail"].startswith("RabbitMQ unavailable")
    after = {k async for k in platform.redis_admin.scan_iter(match=f"{platform.prefix}:*")}
    assert after == before


async def test_every_key_the_app_writes_is_under_its_prefix_and_its_user_can_write_no_other(api, platform):
    before = {k async for k in platform.redis_admin.scan_iter()}
    created = await api.post("/orders", json=ORDER, headers=_key())
    await api.post("/orders", json={**ORDER, "user_id": "nobody"}, headers=_key())
    await api.get(f"/orders/{created.json()['id']}")

    new_keys = {k async for k in platform.redis_admin.scan_iter()} - before
    assert new_keys, "the app wrote nothing"
    assert all(k.startswith(f"{platform.prefix}:") for k in new_keys), new_keys

    # The ACL user the operator gave the app is confined to that prefix.
    as_app = aioredis.from_url(platform.env["REDIS_URL"], decode_responses=True)
    try:
        await as_app.set(f"{platform.prefix}:probe", "1", ex=5)
        with pytest.raises(NoPermissionError):
            await as_app.set("elsewhere:probe", "1", ex=5)
        with pytest.raises(NoPermissionError):
            await as_app.get(f"x{platform.prefix}:orders:{created.json()['id']}")
    finally:
        await as_app.aclose()


async def test_an_unknown_order_is_404(api):
    resp = await api.get(f"/orders/{uuid.uuid4().hex}")
    assert resp.status_code == 404
    assert "not found" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 400, "the Idempotency-Key header is required"),
        ({"Idempotency-Key": "with space"}, 400, "printable ASCII"),
    ],
)
async def test_a_missing_or_bad_idempotency_key_is_refused(api, events, headers, status, detail):
    resp = await api.post("/orders", json=ORDER, headers=headers)
    assert resp.status_code == status
    assert detail in resp.json()["detail"]
    assert await events.drain() == []


async def test_an_invalid_body_is_422_naming_the_field(api, events, users_data):
    resp = await api.post("/orders", json={**ORDER, "quantity": 0}, headers=_key())
    assert resp.status_code == 422
    assert [e["loc"] for e in resp.json()["detail"]] == [["body", "quantity"]]
    assert users_data.received == []
    assert await events.drain() == []
