"""What the tests work with: a provisioned service, the publisher's and operator's view, the workers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider

from notifier_worker.adapters import redis_store
from notifier_worker.bootstrap import Worker
from notifier_worker.config import Settings
from notifier_worker.service_layer.ports import Notifier
from platform_operator.model import PlatformService


@dataclass
class Deployed:
    """One PlatformService as the operator would have provisioned it."""

    svc: PlatformService
    env: dict[str, str]
    queue: str
    exchange: str
    dlq: str

    @property
    def settings(self) -> Settings:
        return Settings.from_mapping(self.env)


def worker_service(queue: str, exchange: str, *, max_retries: int, prefetch: int) -> PlatformService:
    suffix = uuid.uuid4().hex[:6]
    return PlatformService.from_body(
        {
            "metadata": {"name": "notifier-worker", "namespace": f"nw-{suffix}", "uid": str(uuid.uuid4())},
            "spec": {
                "type": "worker",
                "image": "platform/notifier-worker:dev",
                "messaging": {
                    "consumes": [
                        {
                            "queue": queue,
                            "exchange": exchange,
                            "routingKeys": ["order.created"],
                            "prefetch": prefetch,
                            "maxRetries": max_retries,
                            "retryDelaySeconds": 1,
                            "deadLetter": True,
                        }
                    ]
                },
            },
        }
    )


@dataclass
class Admin:
    """Another service (the publisher) and an operator's eye on the broker and Redis."""

    connection: aio_pika.abc.AbstractConnection
    redis: aioredis.Redis

    async def publish(
        self,
        deployed: Deployed,
        body: bytes | dict[str, Any],
        *,
        message_id: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        payload = json.dumps(body).encode() if isinstance(body, dict) else body
        async with self.connection.channel() as channel:
            exchange = await channel.get_exchange(deployed.exchange)
            await exchange.publish(
                aio_pika.Message(
                    payload,
                    message_id=message_id,
                    headers=headers or {},
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key="order.created",
            )

    async def ready_count(self, queue: str) -> int:
        """Messages waiting in the queue (unacknowledged ones are not counted)."""
        async with self.connection.channel() as channel:
            q = await channel.declare_queue(queue, passive=True)
            assert q.declaration_result.message_count is not None
            return q.declaration_result.message_count

    async def get(self, queue: str) -> aio_pika.abc.AbstractIncomingMessage | None:
        """Takes one message off the queue (and acknowledges it)."""
        async with self.connection.channel() as channel:
            q = await channel.get_queue(queue)
            message = await q.get(fail=False)
            if message is not None:
                await message.ack()
            return message


@dataclass
class Workers:
    tracer_provider: TracerProvider
    started: list[Worker] = field(default_factory=list)
    clients: list[aioredis.Redis] = field(default_factory=list)

    def real_notifier(self, deployed: Deployed) -> redis_store.RedisNotifier:
        """The production adapter, with the service's own Redis user, for a double to wrap."""
        client = redis_store.connect(deployed.settings)
        self.clients.append(client)
        return redis_store.RedisNotifier(client, deployed.settings)

    def build(self, deployed: Deployed, notifier: Notifier | None = None) -> Worker:
        worker = Worker(deployed.settings, notifier=notifier, tracer=self.tracer_provider.get_tracer("tests"))
        self.started.append(worker)
        return worker

    async def start(self, deployed: Deployed, notifier: Notifier | None = None) -> Worker:
        worker = self.build(deployed, notifier)
        await worker.start()
        return worker
