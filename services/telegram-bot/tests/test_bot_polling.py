"""The bot in polling mode, as users see it: replies in the chat, orders in orders-api, keys in Redis."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError
from tg_bot_testkit import Deployed


async def order_until_confirm(d: Deployed, chat: int, item: str = "pizza", quantity: str = "3") -> str:
    assert "What would you like to order?" in await d.telegram.say(chat, "/order")
    assert f"How many {item}?" in await d.telegram.say(chat, item)
    return await d.telegram.say(chat, quantity)


async def test_start_replies_with_greeting(polling: Deployed) -> None:
    chat = polling.new_chat()
    reply = await polling.telegram.say(chat, "/start")
    assert reply.startswith("Hello!")
    assert "/order" in reply and "/status" in reply


async def test_order_conversation_places_exactly_one_order(polling: Deployed) -> None:
    chat = polling.new_chat()
    assert await order_until_confirm(polling, chat) == "Order 3 x pizza? Answer yes or no."
    assert polling.orders.posts() == []  # nothing is ordered before the user confirms

    reply = await polling.telegram.say(chat, "yes")

    # the Telegram account's user is asked for first, then the order is placed with its id
    assert [r["method"] for r in polling.orders.requests] == ["PUT", "POST"]
    put, post = polling.orders.requests
    assert put["path"] == f"/users/by-telegram/{chat}"
    assert put["body"] == {"name": "Ann"}
    user_id = polling.orders.user_id_of(chat)
    assert user_id != str(chat)
    assert post["body"] == {"user_id": user_id, "item": "pizza", "quantity": 3}
    assert post["headers"]["Idempotency-Key"]
    # the request id and the trace context travel with both calls
    assert len(post["headers"]["X-Request-ID"]) == 32
    assert put["headers"]["X-Request-ID"] == post["headers"]["X-Request-ID"]
    assert post["headers"]["traceparent"].startswith("00-")
    assert put["headers"]["traceparent"].split("-")[1] == post["headers"]["traceparent"].split("-")[1]
    order_id = polling.orders.by_key[post["headers"]["Idempotency-Key"]]
    assert reply == f"Order {order_id} placed: 3 x pizza."
    # the conversation is over: another "yes" orders nothing
    assert "did not understand" in await polling.telegram.say(chat, "yes")
    assert len(polling.orders.posts()) == 1


async def test_a_wrong_quantity_is_asked_again(polling: Deployed) -> None:
    chat = polling.new_chat()
    await polling.telegram.say(chat, "/order")
    await polling.telegram.say(chat, "tea")
    assert await polling.telegram.say(chat, "lots") == "Please send a whole number from 1 to 100."
    assert await polling.telegram.say(chat, "2") == "Order 2 x tea? Answer yes or no."
    assert await polling.telegram.say(chat, "no") == "Order cancelled."
    assert polling.orders.posts() == []


async def test_conversation_state_lives_in_redis_under_the_prefix(polling: Deployed, redis_admin) -> None:
    _, admin = redis_admin
    prefix = polling.service.prefix
    chat = polling.new_chat()
    await polling.telegram.say(chat, "/order")
    await polling.telegram.say(chat, "soup")

    keys = [k async for k in admin.scan_iter(match="*", count=1000) if str(chat) in k]
    assert keys, "no key in Redis holds the conversation"
    assert all(k.startswith(f"{prefix}:") for k in keys), keys
    state = [k for k in keys if k.endswith(":state")]
    assert len(state) == 1
    assert await admin.get(state[0]) == "OrderForm:quantity"
    assert json.loads(await admin.get(state[0].removesuffix("state") + "data")) == {"item": "soup"}
    assert 0 < await admin.ttl(state[0]) <= 86400  # an abandoned conversation expires
    # updates already handled are remembered under the prefix too
    remembered = [k async for k in admin.scan_iter(match="*:updates:*")]
    assert remembered
    assert all(k.startswith(f"{prefix}:updates:") for k in remembered), remembered

    # and the bot's Redis user could not have written anywhere else
    as_bot = aioredis.from_url(polling.service.redis_url, decode_responses=True)
    try:
        await as_bot.set(f"{prefix}:probe", "1")
        with pytest.raises(NoPermissionError):
            await as_bot.set("elsewhere:probe", "1")
        with pytest.raises(NoPermissionError):
            await as_bot.flushall()
    finally:
        await as_bot.delete(f"{prefix}:probe")
        await as_bot.aclose()


async def test_status_of_an_unknown_order_replies_not_found(polling: Deployed) -> None:
    chat = polling.new_chat()
    assert await polling.telegram.say(chat, "/status 999999") == "Order 999999 not found."
    gets = [r for r in polling.orders.requests if r["method"] == "GET"]
    assert [g["path"] for g in gets] == ["/orders/999999"]
    assert gets[0]["headers"]["X-Request-ID"]


async def test_status_of_a_known_order(polling: Deployed) -> None:
    chat = polling.new_chat()
    await order_until_confirm(polling, chat, "cake", "2")
    placed = await polling.telegram.say(chat, "yes")
    order_id = placed.split()[1]
    assert await polling.telegram.say(chat, f"/status {order_id}") == f"Order {order_id}: 2 x cake."
    assert await polling.telegram.say(chat, "/status") == "Usage: /status <order id>"
    # an id is one path segment of orders-api, whatever the user types
    assert "not found" in await polling.telegram.say(chat, "/status ../admin")
    assert polling.orders.requests[-1]["path"] == "/orders/..%2Fadmin"


async def test_the_same_update_delivered_twice_creates_one_order(polling: Deployed) -> None:
    chat = polling.new_chat()
    await order_until_confirm(polling, chat, "pasta", "1")
    polling.orders.delay = 0.3  # the second copy arrives while the first is being handled
    yes = polling.telegram.message(chat, "yes")
    polling.telegram.deliver(yes, dict(yes))

    replies = await polling.telegram.wait_replies(chat, 4)
    await asyncio.sleep(1)  # time for the copy to be handled, were it handled
    assert len(polling.orders.posts()) == 1
    assert len({o for o in polling.orders.by_key.values()}) == len(polling.orders.by_key)
    assert polling.telegram.replies(chat) == replies  # the copy got no reply of its own
    assert replies[-1].startswith("Order ") and replies[-1].endswith("placed: 1 x pasta.")


async def test_a_lost_answer_from_orders_api_does_not_order_twice(polling: Deployed) -> None:
    chat = polling.new_chat()
    await order_until_confirm(polling, chat, "bread", "4")
    polling.orders.lose_responses = 1  # orders-api creates the order, the bot never hears back

    first = await polling.telegram.say(chat, "yes")
    assert first == "I could not reach the order service. Answer yes to try again, or no to cancel."
    second = await polling.telegram.say(chat, "yes")

    posts = polling.orders.posts()
    assert len(posts) == 2
    assert posts[0]["headers"]["Idempotency-Key"] == posts[1]["headers"]["Idempotency-Key"]
    order_id = polling.orders.by_key[posts[0]["headers"]["Idempotency-Key"]]
    assert second == f"Order {order_id} placed: 4 x bread."
    assert sum(1 for o in polling.orders.orders.values() if o["user_id"] == polling.orders.user_id_of(chat)) == 1


async def test_a_second_order_of_the_same_account_has_the_same_user(polling: Deployed) -> None:
    chat = polling.new_chat()
    await order_until_confirm(polling, chat, "tea", "1")
    await polling.telegram.say(chat, "yes")
    await order_until_confirm(polling, chat, "jam", "2")
    await polling.telegram.say(chat, "yes")

    posts = polling.orders.posts()
    assert len(posts) == 2
    assert posts[0]["body"]["user_id"] == posts[1]["body"]["user_id"] == polling.orders.user_id_of(chat)
    assert len(polling.orders.puts()) == 2  # asked each time: the mapping is orders-api's (users-data's)


async def confirm_while_the_user_lookup_answers(d: Deployed, status: int, detail: str) -> tuple[int, str]:
    """A new chat's order of 2 x soup confirmed while orders-api answers the user lookup with
    `status` and `detail`: the chat, and the bot's reply (no order has been placed)."""
    chat = d.new_chat()
    await order_until_confirm(d, chat, "soup", "2")
    d.orders.user_answer = (status, detail)
    reply = await d.telegram.say(chat, "yes")
    assert d.orders.posts() == []
    return chat, reply


async def test_the_user_lookup_failing_keeps_the_order_for_a_retry(polling: Deployed) -> None:
    chat, first = await confirm_while_the_user_lookup_answers(polling, 503, "users-data unreachable")
    assert first == "I could not reach the order service. Answer yes to try again, or no to cancel."
    polling.orders.user_answer = None
    second = await polling.telegram.say(chat, "yes")

    (post,) = polling.orders.posts()
    assert post["body"]["user_id"] == polling.orders.user_id_of(chat)
    assert second == f"Order {polling.orders.by_key[post['headers']['Idempotency-Key']]} placed: 2 x soup."


async def test_a_user_refused_by_orders_api_ends_the_order(polling: Deployed) -> None:
    _, reply = await confirm_while_the_user_lookup_answers(polling, 422, "users-data refused the user: name too long")
    assert reply == "The order service refused this order: users-data refused the user: name too long"


async def test_health_ready_and_metrics(polling: Deployed) -> None:
    async with httpx.AsyncClient(base_url=polling.bot.url) as client:
        health = await client.get("/health", headers={"X-Request-ID": "probe-1"})
        assert health.status_code == 200
        assert health.headers["X-Request-ID"] == "probe-1"
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"telegram": "ok", "redis": "ok"}
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'telegram_bot_updates_total{outcome="handled",type="message"}' in metrics.text
    assert "telegram_bot_orders_api_requests_total" in metrics.text
    # the bot asked Telegram for polling: the webhook is removed before getUpdates
    assert polling.telegram.called("deleteWebhook")
    assert polling.telegram.called("getUpdates")
