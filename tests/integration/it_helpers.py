"""Integration tests: each adapter against its real server (API server, RabbitMQ, Redis).

`make test-e2e` starts them all and exports their addresses (hack/backends.sh env).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from platform_operator import messaging
from platform_operator.model import PlatformService
from platform_operator.rabbitmq import RabbitMQ


def require_env(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(
            f'{", ".join(missing)} not set: run through `make test-e2e`, or `eval "$(hack/backends.sh env)"`',
            pytrace=False,
        )
    return {n: os.environ[n] for n in names}


def make_service(name: str | None = None, namespace: str | None = None, **spec: Any) -> PlatformService:
    return PlatformService.from_body(
        {
            "metadata": {
                "name": name or f"svc-{uuid.uuid4().hex[:6]}",
                "namespace": namespace or f"it-{uuid.uuid4().hex[:6]}",
                "uid": str(uuid.uuid4()),
            },
            "spec": spec,
        }
    )


ENV = (
    "PLATFORM_RABBITMQ_MANAGEMENT_URL",
    "PLATFORM_RABBITMQ_ADMIN_USER",
    "PLATFORM_RABBITMQ_ADMIN_PASSWORD",
    "PLATFORM_RABBITMQ_SERVICE_HOST",
    "PLATFORM_RABBITMQ_SERVICE_PORT",
)


def admin_amqp_url() -> str:
    env = require_env(*ENV)
    return messaging.amqp_url(
        env["PLATFORM_RABBITMQ_ADMIN_USER"],
        env["PLATFORM_RABBITMQ_ADMIN_PASSWORD"],
        env["PLATFORM_RABBITMQ_SERVICE_HOST"],
        int(env["PLATFORM_RABBITMQ_SERVICE_PORT"]),
        "/",
    )


def make_broker(*, over_amqp: bool = True, **options: Any) -> RabbitMQ:
    """The adapter as the operator runs it: topology over AMQP (over_amqp=False: through the
    management API only, as when no AMQP URL is configured)."""
    env = require_env(*ENV)
    return RabbitMQ(
        env["PLATFORM_RABBITMQ_MANAGEMENT_URL"],
        env["PLATFORM_RABBITMQ_ADMIN_USER"],
        env["PLATFORM_RABBITMQ_ADMIN_PASSWORD"],
        "/",
        amqp_url=admin_amqp_url() if over_amqp else "",
        **options,
    )


@contextlib.asynccontextmanager
async def trickling_proxy(host: str, port: int, delay: float = 0.3) -> AsyncIterator[int]:
    """A local port that passes a real server's answers on one byte every `delay` seconds (the
    requests at full speed): no read ever waits long enough for a socket timeout, so only a
    deadline over the whole call ends it. Yields the port."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pause: float) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(1 if pause else 65536):
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(pause)
        writer.close()

    async def trickle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(client_r, up_w, 0), pipe(up_r, client_w, delay))

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def gives_up_by_its_deadline(door: Any, unavailable: type[Exception], match: str, within: float = 4) -> None:
    """The door's service_users() (through a trickling_proxy) ends as `unavailable` within `within`
    seconds, by the door's own deadline and not a socket timeout; the door is closed after."""
    started = time.monotonic()
    try:
        with pytest.raises(unavailable, match=match):
            await door.service_users()
        assert time.monotonic() - started < within
    finally:
        await door.close()
