"""The one door to RabbitMQ (aio-pika): consume the service's queues and feed the retry path.

The operator declared the topology (queue Q, Q.retry, Q.dlx -> Q.dlq) and gave this service a user
that may only read its own queues and write to its own retry exchange; so the worker declares
nothing, it only checks (passively) that its queues exist. connect_robust reconnects and restores
the consumers after a broker restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity

from platform_contract import Consume

log = logging.getLogger(__name__)

MessageCallback = Callable[[AbstractIncomingMessage], Awaitable[Any]]

# Headers RabbitMQ writes when it dead-letters a message; they describe that copy's history and
# are not the publisher's to set (RabbitMQ 3.13+ ignores them when a client does).
_BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-")


class ConsumeRefused(Exception):
    """The broker will not let this service consume a queue: a configuration problem, not an outage."""


@dataclass
class _Consumer:
    channel: AbstractChannel
    queue: AbstractQueue
    tag: ConsumerTag


def retry_copy(message: AbstractIncomingMessage, retry_header: str, retry_count: int) -> aio_pika.Message:
    """The message as it goes to the retry path: same body and properties, the count in a header."""
    headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith(_BROKER_HEADERS)}
    headers[retry_header] = retry_count
    # user_id is left out: RabbitMQ refuses a publish whose user_id is not the publishing user.
    # expiration too: a per-message TTL would fight the retry queue's delay.
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


class Broker:
    def __init__(self, url: str, connection_name: str) -> None:
        if not url:
            raise RuntimeError("RABBITMQ_URL is not set: declare spec.messaging.consumes in the PlatformService")
        self._url = url
        self._connection_name = connection_name
        self._connection: AbstractRobustConnection | None = None
        self._consumers: dict[str, _Consumer] = {}

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": self._connection_name}
        )

    async def consume(self, consume: Consume, callback: MessageCallback) -> None:
        """Starts consuming one queue on its own channel, so each queue gets its own prefetch."""
        if self._connection is None:
            raise RuntimeError("connect() first")
        # Returned (unroutable) retry copies raise instead of vanishing: the retry queue is gone.
        channel = await self._connection.channel(on_return_raises=True)
        await channel.set_qos(prefetch_count=consume.prefetch)
        try:
            queue = await channel.get_queue(consume.queue, ensure=True)
            tag = await queue.consume(callback)
        except ChannelAccessRefused as exc:
            raise ConsumeRefused(
                f"{exc}: a service's broker user may read only the queues of its own "
                "spec.messaging.consumes (see the PlatformService's QueuesReady condition)"
            ) from exc
        except ChannelNotFoundEntity as exc:
            raise ConsumeRefused(
                f"{exc}: the operator has not declared this queue (see the PlatformService's QueuesReady condition)"
            ) from exc
        self._consumers[consume.queue] = _Consumer(channel, queue, tag)

    async def publish_retry(self, consume: Consume, message: AbstractIncomingMessage, retry_count: int) -> None:
        """Publishes a copy to the retry exchange and waits for the broker's confirm."""
        consumer = self._consumers[consume.queue]
        exchange = await consumer.channel.get_exchange(consume.retry_exchange, ensure=False)
        # Routing key: irrelevant to the fanout retry exchange; the retry queue's policy routes
        # the copy back to the queue when its delay is over.
        await exchange.publish(retry_copy(message, consume.retry_header, retry_count), consume.queue, mandatory=True)

    async def cancel_consumers(self) -> None:
        """Stops deliveries; messages already delivered stay ours to acknowledge."""
        for name, consumer in self._consumers.items():
            try:
                await consumer.queue.cancel(consumer.tag)
            except Exception:
                log.warning("could not cancel the consumer of %s", name, exc_info=True)

    @property
    def connected(self) -> bool:
        # `connected` is cleared while connect_robust is reconnecting; is_closed only after close().
        if self._connection is None or self._connection.is_closed or not self._connection.connected.is_set():
            return False
        return bool(self._consumers) and all(not c.channel.is_closed for c in self._consumers.values())

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._consumers.clear()
        if connection is not None:
            await connection.close()
