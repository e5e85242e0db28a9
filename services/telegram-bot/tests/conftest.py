"""Fixtures for the bot's tests; what they start is in tg_bot_testkit.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from tg_bot_testkit import Deployed, deploy, platform_env, start_server, undeploy

from platform_operator.redis_store import RedisStore


@pytest.fixture(scope="session")
async def redis_admin() -> AsyncIterator[tuple[RedisStore, aioredis.Redis]]:
    url = platform_env("PLATFORM_REDIS_URL")
    store = RedisStore(url)
    admin = aioredis.from_url(url, decode_responses=True)
    yield store, admin
    await admin.aclose()
    await store.close()


@pytest.fixture(scope="session")
async def servers() -> AsyncIterator[Callable[[web.Application], Any]]:
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application) -> str:
        runner, url = await start_server(app)
        runners.append(runner)
        return url

    yield serve
    for runner in runners:
        await runner.cleanup()


@pytest.fixture(scope="session")
async def polling_bot(redis_admin, servers, tmp_path_factory) -> AsyncIterator[Deployed]:
    deployed = await deploy("polling", redis_admin, servers, tmp_path_factory.mktemp("polling"))
    yield deployed
    await undeploy(deployed)


@pytest.fixture(scope="session")
async def webhook_bot(redis_admin, servers, tmp_path_factory) -> AsyncIterator[Deployed]:
    deployed = await deploy("webhook", redis_admin, servers, tmp_path_factory.mktemp("webhook"))
    yield deployed
    await undeploy(deployed)


@pytest.fixture
def polling(polling_bot: Deployed) -> Deployed:
    polling_bot.orders.reset()
    return polling_bot


@pytest.fixture
def webhook(webhook_bot: Deployed) -> Deployed:
    webhook_bot.orders.reset()
    return webhook_bot


@pytest.fixture
async def deploy_bot(redis_admin, servers, tmp_path) -> AsyncIterator[Callable[..., Any]]:
    """Starts a bot of its own for one test (or only prepares it: start=False); stopped, and its Redis
    user removed, at the end."""
    started: list[Deployed] = []

    async def _deploy(mode: str = "polling", *, start: bool = True, wait_ready: bool = True, **extra: str) -> Deployed:
        deployed = await deploy(mode, redis_admin, servers, tmp_path, start=start, wait_ready=wait_ready, **extra)
        started.append(deployed)
        return deployed

    yield _deploy
    for deployed in started:
        with contextlib.suppress(Exception):
            await deployed.bot.terminate()
        await deployed.service.remove()
