"""Redis behind the two ports: the notifier (modelled as a record per order) and the processed
markers. Every key is under the service's prefix, the only keys its ACL user may touch."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from notifier_worker.config import Settings
from notifier_worker.domain.model import Notification

DONE = "done"
PENDING = "pending:"

# Deletes the claim only if it is still ours: after our lease ran out another delivery may hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def connect(settings: Settings) -> aioredis.Redis:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: the operator provides it when it manages Redis")
    return aioredis.from_url(settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)


def notification_key(settings: Settings, order_id: str) -> str:
    return settings.key("notifications", order_id)


def sent_counter_key(settings: Settings) -> str:
    return settings.key("stats", "notifications_sent")


def processed_key(settings: Settings, message_key: str) -> str:
    return settings.key("processed", message_key)


class RedisNotifier:
    """Stands for a real channel (Telegram, e-mail): "sending" records what was sent, and counts it."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings

    async def send(self, notification: Notification) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(notification_key(self._settings, notification.order_id), notification.model_dump_json())
            pipe.incr(sent_counter_key(self._settings))
            await pipe.execute()


class RedisProcessedMessages:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._release = redis.register_script(_RELEASE)

    async def claim(self, message_key: str, lease_seconds: int) -> str | None:
        token = PENDING + uuid.uuid4().hex
        claimed = await self._redis.set(processed_key(self._settings, message_key), token, nx=True, ex=lease_seconds)
        return token if claimed else None

    async def is_done(self, message_key: str) -> bool:
        return await self._redis.get(processed_key(self._settings, message_key)) == DONE

    async def complete(self, message_key: str, ttl_seconds: int) -> None:
        await self._redis.set(processed_key(self._settings, message_key), DONE, ex=ttl_seconds)

    async def release(self, message_key: str, token: str) -> None:
        await self._release(keys=[processed_key(self._settings, message_key)], args=[token])
