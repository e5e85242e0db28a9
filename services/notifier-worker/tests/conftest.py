"""Fixtures: a real broker user, queues and Redis ACL user per test, provisioned with the operator's
own adapters, and the worker built from the env the operator would put in its Secret.

Needs the PLATFORM_* variables of hack/backends.sh (`eval "$(hack/backends.sh env)"`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest
import redis.asyncio as aioredis
from notifier_worker_env import Admin, Deployed, Workers, worker_service
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from operator_testkit import AsTheOperator

from platform_operator import messaging
from platform_operator.model import PlatformService


@pytest.fixture
async def provision(as_the_operator: AsTheOperator) -> AsyncIterator[Callable[..., Awaitable[Deployed]]]:
    done: list[PlatformService] = []

    async def _provision(*, max_retries: int = 2, prefetch: int = 10, **env: str) -> Deployed:
        suffix = uuid.uuid4().hex[:6]
        queue, exchange = f"notifier.orders.{suffix}", f"orders.{suffix}"
        svc = worker_service(queue, exchange, max_retries=max_retries, prefetch=prefetch)
        settings = await as_the_operator.provision(svc)
        done.append(svc)
        # The worker's own settings, as a user would set them in spec.env; port 0: tests run in parallel.
        settings |= {"HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "SHUTDOWN_GRACE_SECONDS": "10", **env}
        # On the broker every name sits under the service's namespace (messaging.broker_name).
        queue, exchange = messaging.broker_name(svc.namespace, queue), messaging.broker_name(svc.namespace, exchange)
        return Deployed(svc=svc, env=settings, queue=queue, exchange=exchange, dlq=messaging.dlq_name(queue))

    yield _provision
    for svc in done:
        await as_the_operator.deprovision(svc)


@pytest.fixture
async def admin(backends: dict[str, str]) -> AsyncIterator[Admin]:
    url = messaging.amqp_url(
        backends["PLATFORM_RABBITMQ_ADMIN_USER"],
        backends["PLATFORM_RABBITMQ_ADMIN_PASSWORD"],
        backends["PLATFORM_RABBITMQ_SERVICE_HOST"],
        int(backends["PLATFORM_RABBITMQ_SERVICE_PORT"]),
        "/",
    )
    connection = await aio_pika.connect(url)
    redis = aioredis.from_url(backends["PLATFORM_REDIS_URL"], decode_responses=True)
    yield Admin(connection, redis)
    await connection.close()
    await redis.aclose()


@pytest.fixture(scope="session")
def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer of the tests' own, handed to the worker (the global provider is not ours to set)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
async def workers(tracing: tuple[TracerProvider, InMemorySpanExporter]) -> AsyncIterator[Workers]:
    w = Workers(tracing[0])
    yield w
    for worker in w.started:
        await worker.stop()
    for client in w.clients:
        await client.aclose()
