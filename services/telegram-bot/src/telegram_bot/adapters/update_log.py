"""Which Telegram updates were already handled, so that one delivered again is not handled twice.

An update is remembered only once its handling succeeded: one whose handling failed (and which
Telegram therefore sends again) is handled again, and orders-api's Idempotency-Key keeps that
from ordering twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis


class UpdateLog(Protocol):
    async def seen(self, bot_id: int, update_id: int) -> bool: ...

    async def remember(self, bot_id: int, update_id: int) -> None: ...


class RedisUpdateLog:
    def __init__(self, redis: aioredis.Redis, key: Callable[..., str], ttl_seconds: int) -> None:
        self._redis = redis
        self._key = key
        self._ttl = ttl_seconds

    async def seen(self, bot_id: int, update_id: int) -> bool:
        return bool(await self._redis.exists(self._key("updates", str(bot_id), str(update_id))))

    async def remember(self, bot_id: int, update_id: int) -> None:
        await self._redis.set(self._key("updates", str(bot_id), str(update_id)), "1", ex=self._ttl)


class MemoryUpdateLog:
    """For a bot run without Redis (one process, local use): the most recent updates only."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[int, int], None] = OrderedDict()

    async def seen(self, bot_id: int, update_id: int) -> bool:
        return (bot_id, update_id) in self._seen

    async def remember(self, bot_id: int, update_id: int) -> None:
        self._seen[(bot_id, update_id)] = None
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
