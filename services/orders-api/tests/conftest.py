"""orders-api against real servers: Redis and RabbitMQ from `hack/backends.sh`, provisioned exactly
as the operator would (its own adapters: a broker user + the `orders` exchange, a Redis ACL user
under the key prefix), and the app configured with exactly the env the operator would give it
(`builders.secret_settings`). Only users-data is replaced by a stand-in (see UsersDataStandIn).

    export BACKENDS_NAME=... REDIS_PORT=... RABBITMQ_PORT=... RABBITMQ_MANAGEMENT_PORT=...
    hack/backends.sh up && eval "$(hack/backends.sh env)"
    uv run --all-packages pytest services/orders-api/tests -q
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aioredis
import yaml
from operator_testkit import AsTheOperator
from orders_testkit import TcpProxy, UsersDataStandIn

from orders_api.bootstrap import build_app
from orders_api.config import Settings
from platform_contract import data_url_variable
from platform_operator.model import PlatformService

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "orders-api.yaml"


@dataclass
class Platform:
    """orders-api as the operator provisioned it, plus admin access to check what happened."""

    svc: PlatformService
    env: dict[str, str]  # what the operator puts in the orders-api-platform Secret
    backends: dict[str, str]
    redis_admin: aioredis.Redis
    management: httpx.AsyncClient  # RabbitMQ management API as the admin

    @property
    def prefix(self) -> str:
        return self.svc.key_prefix

    @property
    def vhost(self) -> str:
        return quote(self.backends["PLATFORM_RABBITMQ_VHOST"], safe="")


@pytest.fixture(scope="session")
async def platform(backends: dict[str, str], as_the_operator: AsTheOperator) -> AsyncIterator[Platform]:
    body = yaml.safe_load(SAMPLE.read_text())
    # A namespace of its own per run: its own prefix, broker user and Redis user.
    body["metadata"]["namespace"] = f"t-{uuid.uuid4().hex[:8]}"
    svc = PlatformService.from_body(body)
    env = await as_the_operator.provision(svc)
    redis_admin = aioredis.from_url(backends["PLATFORM_REDIS_URL"], decode_responses=True)
    management = httpx.AsyncClient(
        base_url=backends["PLATFORM_RABBITMQ_MANAGEMENT_URL"].rstrip("/") + "/api",
        auth=(backends["PLATFORM_RABBITMQ_ADMIN_USER"], backends["PLATFORM_RABBITMQ_ADMIN_PASSWORD"]),
        timeout=10,
    )
    try:
        yield Platform(svc, env, backends, redis_admin, management)
    finally:
        await as_the_operator.deprovision(svc)
        await redis_admin.aclose()
        await management.aclose()


@pytest.fixture
async def users_data() -> AsyncIterator[UsersDataStandIn]:
    stand_in = UsersDataStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def redis_proxy(platform: Platform) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(
        platform.backends["PLATFORM_REDIS_SERVICE_HOST"], int(platform.backends["PLATFORM_REDIS_SERVICE_PORT"])
    )
    await proxy.start()
    yield proxy
    await proxy.stop()


@dataclass
class EventQueue:
    """A queue bound to the `orders` exchange with `#` (declared through the admin's management
    API, as a consumer's would be by the operator), to see every event orders-api publishes."""

    platform: Platform
    name: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def drain(self) -> list[dict[str, Any]]:
        """Every message now in the queue, taken off it (publisher confirms mean that an event of a
        request that has returned is already there)."""
        resp = await self.platform.management.post(
            f"/queues/{self.platform.vhost}/{quote(self.name, safe='')}/get",
            json={"count": 100, "ackmode": "ack_requeue_false", "encoding": "auto"},
        )
        resp.raise_for_status()
        messages = resp.json()
        for m in messages:
            m["body"] = json.loads(m["payload"])
        self.seen.extend(messages)
        return messages


@pytest.fixture
async def events(platform: Platform) -> AsyncIterator[EventQueue]:
    exchange = platform.env["RABBITMQ_PUBLISHES"].split(",")[0]
    name = f"test.orders-api.{uuid.uuid4().hex[:8]}"
    api, vhost = platform.management, platform.vhost
    (
        await api.put(f"/queues/{vhost}/{quote(name, safe='')}", json={"durable": False, "auto_delete": False})
    ).raise_for_status()
    (
        await api.post(
            f"/bindings/{vhost}/e/{quote(exchange, safe='')}/q/{quote(name, safe='')}", json={"routing_key": "#"}
        )
    ).raise_for_status()
    yield EventQueue(platform, name)
    await api.delete(f"/queues/{vhost}/{quote(name, safe='')}")


AppFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def start_app(platform: Platform, users_data: UsersDataStandIn) -> AsyncIterator[AppFactory]:
    """Starts orders-api (lifespan included) on the operator's env plus DATA_USERS_DATA_URL, with
    `overrides` on top, and returns an httpx client talking to it in-process."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: str) -> httpx.AsyncClient:
            env = {**platform.env, data_url_variable("users-data"): users_data.url, **overrides}
            # The service reads its environment, as in its pod.
            with mock.patch.dict(os.environ, env):
                settings = Settings()
            app = build_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders-api")
            return await stack.enter_async_context(client)

        yield start


@pytest.fixture
async def api(start_app: AppFactory) -> httpx.AsyncClient:
    return await start_app()
