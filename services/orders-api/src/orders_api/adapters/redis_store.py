"""Orders and idempotency records in Redis, every key under the service's prefix: the ACL user the
operator gives this service may touch no other key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orders_api.domain.model import Order
from orders_api.service_layer import idempotency
from orders_api.service_layer.ports import StoreUnavailable

# Compare-and-set and compare-and-delete on our own claim, atomic in Redis (GET then SET would race).
_COMPLETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

KeyFn = Callable[..., str]


def connect(url: str, timeout: float) -> aioredis.Redis:
    return aioredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        # A couple of quick retries ride out a dropped pooled connection; a Redis that is really
        # down must fail the request (503) and /ready fast, not after redis-py's default backoff.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
    )


@asynccontextmanager
async def _unavailable_as_store_error() -> AsyncIterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StoreUnavailable(f"Redis unreachable: {exc}") from exc


class RedisOrders:
    def __init__(self, client: aioredis.Redis, key: KeyFn) -> None:
        self._redis = client
        self._key = key

    async def add(self, order: Order) -> None:
        async with _unavailable_as_store_error():
            await self._redis.set(self._key("orders", order.id), order.model_dump_json())

    async def get(self, order_id: str) -> Order | None:
        async with _unavailable_as_store_error():
            raw = await self._redis.get(self._key("orders", order_id))
        return None if raw is None else Order.model_validate_json(raw)

    async def remove(self, order_id: str) -> None:
        async with _unavailable_as_store_error():
            await self._redis.delete(self._key("orders", order_id))


class RedisIdempotency:
    def __init__(self, client: aioredis.Redis, key: KeyFn) -> None:
        self._redis = client
        self._key = key
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    async def claim(self, key: str, pending: idempotency.Pending, lock_seconds: int) -> bool:
        async with _unavailable_as_store_error():
            return bool(
                await self._redis.set(self._key("idem", key), idempotency.encode(pending), nx=True, ex=lock_seconds)
            )

    async def get(self, key: str) -> idempotency.Record | None:
        async with _unavailable_as_store_error():
            raw = await self._redis.get(self._key("idem", key))
        return None if raw is None else idempotency.decode(raw)

    async def complete(
        self, key: str, pending: idempotency.Pending, completed: idempotency.Completed, ttl_seconds: int
    ) -> bool:
        async with _unavailable_as_store_error():
            done = await self._complete(
                keys=[self._key("idem", key)],
                args=[idempotency.encode(pending), idempotency.encode(completed), ttl_seconds],
            )
        return bool(done)

    async def release(self, key: str, pending: idempotency.Pending) -> None:
        async with _unavailable_as_store_error():
            await self._release(keys=[self._key("idem", key)], args=[idempotency.encode(pending)])


async def ping(client: aioredis.Redis) -> None:
    async with _unavailable_as_store_error():
        await client.ping()
