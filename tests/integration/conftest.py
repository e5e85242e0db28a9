"""Fixtures every integration suite shares: the adapters under test and admin views of the servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
from it_helpers import ENV, make_broker, require_env

from platform_operator.rabbitmq import RabbitMQ
from platform_operator.redis_store import RedisStore


@pytest.fixture
async def broker() -> AsyncIterator[RabbitMQ]:
    b = make_broker()
    yield b
    await b.close()


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """The management API as an admin, to look at what the adapter did."""
    env = require_env(*ENV)
    auth = (env["PLATFORM_RABBITMQ_ADMIN_USER"], env["PLATFORM_RABBITMQ_ADMIN_PASSWORD"])
    async with httpx.AsyncClient(base_url=env["PLATFORM_RABBITMQ_MANAGEMENT_URL"] + "/api", auth=auth) as c:
        yield c


@pytest.fixture
async def store() -> AsyncIterator[RedisStore]:
    env = require_env("PLATFORM_REDIS_URL")
    s = RedisStore(env["PLATFORM_REDIS_URL"])
    yield s
    await s.close()


@pytest.fixture
async def admin() -> AsyncIterator[aioredis.Redis]:
    env = require_env("PLATFORM_REDIS_URL")
    r = aioredis.from_url(env["PLATFORM_REDIS_URL"], decode_responses=True)
    yield r
    await r.aclose()
