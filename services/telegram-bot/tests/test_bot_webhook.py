"""The bot in webhook mode: Telegram POSTs updates to the path of BOT_WEBHOOK_URL on port 8000."""

from __future__ import annotations

import asyncio

import httpx
from tg_bot_testkit import WEBHOOK_HOST, WEBHOOK_PATH, Deployed, webhook_post


async def say(d: Deployed, chat: int, text: str) -> str:
    before = len(d.telegram.replies(chat))
    response = await webhook_post(d, d.telegram.message(chat, text))
    assert response.status_code == 200, response.text
    return (await d.telegram.wait_replies(chat, before + 1))[before]


async def test_the_webhook_is_registered_with_telegram(webhook: Deployed) -> None:
    calls = webhook.telegram.called("setWebhook")
    assert len(calls) == 1
    # BOT_WEBHOOK_URL as the operator derives it from spec.ingress
    assert calls[0]["url"] == f"http://{WEBHOOK_HOST}{WEBHOOK_PATH}"
    assert len(calls[0]["secret_token"]) >= 32
    assert webhook.telegram.called("getUpdates") == []


async def test_an_update_posted_to_the_webhook_gets_a_reply(webhook: Deployed) -> None:
    chat = webhook.new_chat()
    reply = await say(webhook, chat, "/start")
    assert reply.startswith("Hello!")


async def test_a_webhook_calls_request_id_goes_on_to_orders_api(webhook: Deployed) -> None:
    chat = webhook.new_chat()
    response = await webhook_post(webhook, webhook.telegram.message(chat, "/status abc"), request_id="from-ingress-1")
    assert response.status_code == 200
    assert await webhook.telegram.wait_replies(chat, 1) == ["Order abc not found."]
    assert webhook.orders.requests[-1]["headers"]["X-Request-ID"] == "from-ingress-1"


async def test_a_post_without_telegrams_secret_is_refused(webhook: Deployed) -> None:
    chat = webhook.new_chat()
    forged = await webhook_post(webhook, webhook.telegram.message(chat, "/start"), secret="guessed")  # noqa: S106  # a forger's guess
    assert forged.status_code == 401
    missing = await webhook_post(webhook, webhook.telegram.message(chat, "/start"), secret="")
    assert missing.status_code == 401
    await asyncio.sleep(0.3)
    assert webhook.telegram.replies(chat) == []


async def test_a_webhook_order_redelivered_by_telegram_creates_one_order(webhook: Deployed) -> None:
    chat = webhook.new_chat()
    await say(webhook, chat, "/order")
    await say(webhook, chat, "tea")
    assert await say(webhook, chat, "2") == "Order 2 x tea? Answer yes or no."

    webhook.orders.delay = 0.3
    yes = webhook.telegram.message(chat, "yes")
    # Telegram sends an update again when its call timed out: here while the first is still handled ...
    first, second = await asyncio.gather(webhook_post(webhook, yes), webhook_post(webhook, yes))
    # ... and once more afterwards
    third = await webhook_post(webhook, yes)
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]

    await asyncio.sleep(0.5)
    posts = webhook.orders.posts()
    assert len(posts) == 1
    order_id = webhook.orders.by_key[posts[0]["headers"]["Idempotency-Key"]]
    replies = webhook.telegram.replies(chat)
    assert replies[3:] == [f"Order {order_id} placed: 2 x tea."]


async def test_health_and_ready_on_the_webhook_server(webhook: Deployed) -> None:
    async with httpx.AsyncClient(base_url=webhook.bot.url) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"telegram": "ok", "redis": "ok"}}
        assert "telegram_bot_updates_total" in (await client.get("/metrics")).text
