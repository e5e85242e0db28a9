"""Starting and stopping: readiness that tells the truth, and SIGTERM that lets an order finish."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from tg_bot_testkit import BotProcess, eventually, free_port, webhook_post


async def test_sigterm_lets_the_order_in_flight_finish(deploy_bot) -> None:
    d = await deploy_bot("polling", ORDERS_API_TIMEOUT_SECONDS="10")
    chat = d.new_chat()
    await d.telegram.say(chat, "/order")
    await d.telegram.say(chat, "jam")
    await d.telegram.say(chat, "5")
    d.orders.delay = 2  # orders-api is slow to answer
    d.telegram.deliver(d.telegram.message(chat, "yes"))
    await eventually(d.orders.posts, 10, "the order to reach orders-api")

    code = await d.bot.terminate(within=15)

    assert code == 0, d.bot.log()
    order_id = next(iter(d.orders.by_key.values()))
    assert d.telegram.replies(chat)[-1] == f"Order {order_id} placed: 5 x jam."


async def test_ready_says_when_redis_is_unreachable(deploy_bot, redis_admin) -> None:
    # a port nothing listens on: the bot runs, but cannot keep conversations
    d = await deploy_bot("polling", wait_ready=False, REDIS_URL="redis://nobody:nothing@127.0.0.1:1/0")
    async with httpx.AsyncClient(base_url=d.bot.url) as client:
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["redis"].startswith("unreachable")


async def test_sigterm_lets_a_webhook_call_in_flight_finish(deploy_bot) -> None:
    d = await deploy_bot("webhook", ORDERS_API_TIMEOUT_SECONDS="10")
    chat = d.new_chat()
    for text in ("/order", "jam", "5"):
        assert (await webhook_post(d, d.telegram.message(chat, text))).status_code == 200
    d.orders.delay = 2
    call = asyncio.create_task(webhook_post(d, d.telegram.message(chat, "yes")))
    await eventually(d.orders.posts, 10, "the order to reach orders-api")

    code = await d.bot.terminate(within=15)

    assert code == 0, d.bot.log()
    assert (await call).status_code == 200  # Telegram hears that the update was handled
    order_id = next(iter(d.orders.by_key.values()))
    assert d.telegram.replies(chat)[-1] == f"Order {order_id} placed: 5 x jam."


async def test_a_token_telegram_refuses_stops_the_bot_with_an_error(deploy_bot, tmp_path) -> None:
    d = await deploy_bot("polling", start=False)
    # the environment the operator would give, with a token the (fake) Bot API does not know
    bot = BotProcess({**d.bot.env, "BOT_TOKEN": "1:wrong", "HTTP_PORT": str(free_port())}, tmp_path / "wrong.log")
    with pytest.raises(AssertionError, match="exited with 1"):
        await bot.start()
    assert "Unauthorized" in bot.log()
    assert "1:wrong" not in bot.log()  # the token itself is never logged


async def test_a_webhook_bot_without_its_url_says_what_is_missing(deploy_bot, tmp_path) -> None:
    d = await deploy_bot("polling", start=False)
    env = {**d.bot.env, "BOT_MODE": "webhook", "BOT_WEBHOOK_URL": "", "HTTP_PORT": str(free_port())}
    bot = BotProcess(env, tmp_path / "no-url.log")
    with pytest.raises(AssertionError, match="exited with 2"):
        await bot.start()
    assert "BOT_WEBHOOK_URL is not set" in bot.log()
