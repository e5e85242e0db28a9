"""Wires the bot together from its settings: the Bot, the Dispatcher and its FSM storage, orders-api."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage

from platform_contract.telemetry.clients import instrument_redis
from telegram_bot.adapters.orders_api import HttpOrdersApi
from telegram_bot.adapters.update_log import MemoryUpdateLog, RedisUpdateLog, UpdateLog
from telegram_bot.config import Settings
from telegram_bot.entrypoints.handlers import build_router
from telegram_bot.entrypoints.middleware import InFlight, UpdateMiddleware
from telegram_bot.service_layer.ordering import Ordering

log = logging.getLogger(__name__)


class AppOwnedRedisStorage(RedisStorage):
    """RedisStorage whose connection outlives the Dispatcher's shutdown.

    aiogram closes the storage when polling stops, while updates already fetched are still being
    handled; the app closes Redis itself once they are done.
    """

    async def close(self) -> None:
        return None


@dataclass
class BotApp:
    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    orders_api: HttpOrdersApi
    redis: aioredis.Redis | None
    in_flight: InFlight = field(default_factory=InFlight)
    ready: bool = False  # Telegram told how to deliver (webhook set or polling started), not stopping

    async def check_dependencies(self) -> dict[str, str]:
        """What /ready reports: each dependency the bot needs to answer users, "ok" or why not."""
        checks = {"telegram": "ok" if self.ready else "not receiving updates"}
        if self.redis is not None:
            try:
                await self.redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:  # any failure means not ready; the reason is reported
                checks["redis"] = f"unreachable: {type(exc).__name__}"
        return checks

    async def close(self) -> None:
        await self.orders_api.close()
        await self.bot.session.close()
        if self.redis is not None:
            await self.redis.aclose()


def bootstrap(settings: Settings) -> BotApp:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    bot = Bot(token=settings.bot_token.get_secret_value(), session=session)

    redis: aioredis.Redis | None = None
    update_log: UpdateLog
    if settings.redis_url:
        redis = instrument_redis(aioredis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5))
        # Every key under "<prefix>:": the service's Redis user may touch no other.
        redis_storage = AppOwnedRedisStorage(
            redis,
            key_builder=DefaultKeyBuilder(prefix=settings.redis_key_prefix, with_bot_id=True),
            state_ttl=settings.conversation_ttl_seconds,
            data_ttl=settings.conversation_ttl_seconds,
        )
        storage: BaseStorage = redis_storage
        # One update at a time per chat and user, across replicas: a double-tapped "yes" is
        # seen after the first one finished.
        isolation: BaseEventIsolation = redis_storage.create_isolation()
        update_log = RedisUpdateLog(redis, settings.key, settings.idempotency_ttl_seconds)
    else:
        log.warning("REDIS_URL is not set: conversations live in this process only (run one replica)")
        storage = MemoryStorage()
        isolation = SimpleEventIsolation()
        update_log = MemoryUpdateLog()

    orders_api = HttpOrdersApi(
        settings.orders_api_url,
        request_id_header=settings.request_id_header,
        timeout=settings.orders_api_timeout_seconds,
    )
    dispatcher = Dispatcher(storage=storage, events_isolation=isolation, ordering=Ordering(orders_api))
    dispatcher.include_router(build_router())
    app = BotApp(settings=settings, bot=bot, dispatcher=dispatcher, orders_api=orders_api, redis=redis)
    dispatcher.update.outer_middleware(UpdateMiddleware(update_log, app.in_flight))
    return app
