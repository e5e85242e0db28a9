"""Publishes order events to the exchange the operator declared (spec.messaging.publishes).

The connection is robust (aio-pika reconnects by itself once it has connected); the first
connection is retried in the background, so that the API starts, answers /health, and reports
not ready on /ready until the broker is there, instead of crash-looping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from orders_api.domain.events import OrderCreated
from orders_api.service_layer.ports import BrokerUnavailable
from platform_contract import telemetry

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

MAX_BACKOFF_SECONDS = 30.0


class RabbitPublisher:
    def __init__(self, url: str, exchange: str, app_id: str, *, publish_timeout: float = 5.0) -> None:
        self._url = url
        self._exchange_name = exchange
        self._app_id = app_id
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._connector: asyncio.Task[None] | None = None
        self.last_error = "not connected yet"

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_until_up(), name="rabbitmq-connect")

    async def wait_connected(self, seconds: float) -> bool:
        if self._connector is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._connector), seconds)
        return self.ready

    async def _connect_until_up(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._connect()
                return
            except (AMQPError, OSError, TimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("RabbitMQ not reachable (%s); retrying in %.1fs", self.last_error, delay)
                await self._close_connection()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def _connect(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, timeout=10, client_properties={"connection_name": self._app_id}
        )
        # Publisher confirms: publish() returns once the broker has the message.
        self._channel = await self._connection.channel(publisher_confirms=True)
        # Passive: the operator declares the exchange; a missing one is a deployment error to report.
        self._exchange = await self._channel.get_exchange(self._exchange_name, ensure=True)
        self.last_error = ""
        log.info("connected to RabbitMQ; publishing to exchange %s", self._exchange_name)

    async def _close_connection(self) -> None:
        connection, self._connection, self._channel, self._exchange = self._connection, None, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    @property
    def ready(self) -> bool:
        return (
            self._exchange is not None
            and self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    def status(self) -> str:
        if self.ready:
            return "ok"
        return self.last_error or "connection lost; reconnecting"

    async def publish(self, event: OrderCreated) -> None:
        exchange = self._exchange
        if exchange is None or not self.ready:
            raise BrokerUnavailable(f"RabbitMQ unavailable: {self.status()}")
        with tracer.start_as_current_span(f"{self._exchange_name} publish", kind=SpanKind.PRODUCER) as span:
            span.set_attribute("messaging.system", "rabbitmq")
            span.set_attribute("messaging.destination.name", self._exchange_name)
            span.set_attribute("messaging.rabbitmq.destination.routing_key", event.routing_key)
            span.set_attribute("messaging.message.id", event.order_id)
            headers: dict[str, str] = {}
            telemetry.inject(headers)  # traceparent (+ tracestate) and x-request-id
            message = aio_pika.Message(
                body=event.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event.order_id,  # lets consumers drop a redelivered duplicate
                type=event.routing_key,
                timestamp=event.created_at,
                app_id=self._app_id,
                headers=dict(headers),
            )
            try:
                # Not mandatory: an exchange with no queue bound yet is normal in pub/sub.
                await exchange.publish(
                    message, routing_key=event.routing_key, mandatory=False, timeout=self._publish_timeout
                )
            except (AMQPError, OSError, TimeoutError, RuntimeError) as exc:
                raise BrokerUnavailable(f"RabbitMQ did not confirm the event: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connector
        await self._close_connection()
