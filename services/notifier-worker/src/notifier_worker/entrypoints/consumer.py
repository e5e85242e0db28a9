"""The AMQP entrypoint: one delivered message in, one acknowledgement decision out.

handled or duplicate          -> ack
handler failed, n < maxRetries -> copy with x-retry-count n+1 to Q.retry, then ack
handler failed, n = maxRetries -> reject(requeue=False): RabbitMQ dead-letters it to Q.dlq
poison (bad JSON or schema)    -> reject(requeue=False) at once: retrying cannot help
being handled by another delivery -> copy with the same count to Q.retry (a wait, not a retry)
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from notifier_worker.adapters.broker import Broker
from notifier_worker.domain.model import OrderCreated, PoisonMessage, parse_order_created
from notifier_worker.observability import Metrics
from notifier_worker.service_layer.handlers import Outcome
from platform_contract import Consume
from platform_contract.telemetry import MESSAGE_REQUEST_ID_HEADER, extract, new_request_id, request_id

log = logging.getLogger(__name__)

UseCase = Callable[[OrderCreated, str], Awaitable[Outcome]]
# Without a retry path, a message waiting for its twin is requeued after this pause instead.
REQUEUE_PAUSE_SECONDS = 1.0


class AfterFailure(enum.Enum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


def after_failure(retry_count: int, consume: Consume) -> AfterFailure:
    if consume.retry_exchange and retry_count < consume.max_retries:
        return AfterFailure.RETRY
    return AfterFailure.DEAD_LETTER


def text_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """AMQP header values may arrive as bytes; the trace and request id helpers want text."""
    return {k: v.decode(errors="replace") if isinstance(v, bytes) else v for k, v in (headers or {}).items()}


def retry_count(headers: Mapping[str, Any], name: str) -> int:
    try:
        return max(0, int(headers.get(name, 0)))
    except (TypeError, ValueError):
        return 0  # a header we did not write: count from zero rather than refuse the message


class InFlight:
    """The messages being handled, so that shutdown can wait for them."""

    def __init__(self) -> None:
        self.accepting = True
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)

    def discard(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    async def drain(self, grace_seconds: float) -> int:
        """Waits for the messages in hand; cancels those still running after the grace, which
        leaves them unacknowledged, so RabbitMQ delivers them again. Returns how many."""
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        return len(pending)


class MessageHandler:
    """The callback of one consumed queue."""

    def __init__(
        self,
        consume: Consume,
        *,
        use_case: UseCase,
        broker: Broker,
        metrics: Metrics,
        in_flight: InFlight,
        tracer: trace.Tracer,
        request_id_header: str,
    ) -> None:
        self._consume = consume
        self._use_case = use_case
        self._broker = broker
        self._metrics = metrics
        self._in_flight = in_flight
        self._tracer = tracer
        self._request_id_headers = (MESSAGE_REQUEST_ID_HEADER, request_id_header.lower())

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        if not self._in_flight.accepting:
            # Delivered while the consumer was being cancelled: give it back, untouched.
            await message.nack(requeue=True)
            return
        task = asyncio.current_task()
        if task is None:  # never: aiormq runs every delivery in a task of its own
            raise RuntimeError("message callback called outside a task")
        self._in_flight.add(task)
        self._metrics.in_flight.inc()
        try:
            await self._handle(message)
        except asyncio.CancelledError:
            log.warning("shutdown cut the handling of message %s short; RabbitMQ will redeliver it", message.message_id)
            raise
        except Exception:
            # Mostly: the channel closed under us and the ack could not be sent. Unacknowledged,
            # the message is delivered again, and the processed marker makes that harmless.
            log.exception("could not settle message %s; RabbitMQ will redeliver it", message.message_id)
        finally:
            self._metrics.in_flight.dec()
            self._in_flight.discard(task)

    def _request_id(self, headers: Mapping[str, Any], message: AbstractIncomingMessage) -> str:
        lowered = {k.lower(): v for k, v in headers.items()}
        for name in self._request_id_headers:
            if lowered.get(name):
                return str(lowered[name])
        return message.correlation_id or new_request_id()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        queue = self._consume.queue
        headers = text_headers(message.headers)
        count = retry_count(headers, self._consume.retry_header)
        rid = self._request_id(headers, message)
        rid_token = request_id.set(rid)
        started, outcome = time.perf_counter(), "error"
        fields: dict[str, Any] = {
            "request_id": rid,
            "queue": queue,
            "message_id": message.message_id,
            "retry_count": count,
        }
        attributes = {
            "messaging.system": "rabbitmq",
            "messaging.operation": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": message.message_id or "",
            "messaging.rabbitmq.retry_count": count,
            "request_id": rid,
        }
        try:
            with self._tracer.start_as_current_span(
                f"{queue} process", context=extract(headers), kind=SpanKind.CONSUMER, attributes=attributes
            ) as span:
                try:
                    event = parse_order_created(message.body)
                except PoisonMessage as exc:
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    outcome = "poison"
                    await self._dead_letter(message, "poison", str(exc), fields)
                    return
                fields["order_id"] = event.order_id
                span.set_attribute("order.id", event.order_id)
                try:
                    result = await self._use_case(event, message.message_id or event.order_id)
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, repr(exc)))
                    outcome = await self._after_failure(message, count, exc, fields)
                    return
                outcome = result.value
                await self._settle(message, result, count, fields)
        finally:
            self._metrics.handling.labels(queue, outcome).observe(time.perf_counter() - started)
            request_id.reset(rid_token)

    async def _settle(
        self, message: AbstractIncomingMessage, result: Outcome, count: int, fields: dict[str, Any]
    ) -> None:
        queue = self._consume.queue
        if result is Outcome.SENT:
            await message.ack()
            self._metrics.processed.labels(queue).inc()
            log.info("notification sent for order %s", fields["order_id"], extra=fields)
        elif result is Outcome.DUPLICATE:
            await message.ack()
            self._metrics.duplicates.labels(queue).inc()
            log.info("message %s was handled before; acknowledged without sending", message.message_id, extra=fields)
        else:
            await self._defer(message, count, fields)

    async def _after_failure(
        self, message: AbstractIncomingMessage, count: int, exc: Exception, fields: dict[str, Any]
    ) -> str:
        consume = self._consume
        if after_failure(count, consume) is AfterFailure.DEAD_LETTER:
            reason = f"failed {count + 1} times ({exc!r}); no retries left (maxRetries={consume.max_retries})"
            await self._dead_letter(message, "retries_exhausted", reason, fields)
            return "dead_lettered"
        try:
            await self._broker.publish_retry(consume, message, count + 1)
        except Exception:
            log.exception("handling failed and the retry path refused the copy", extra=fields)
            await self._dead_letter(message, "retry_path_unavailable", f"handling failed: {exc!r}", fields)
            return "dead_lettered"
        await message.ack()
        self._metrics.retried.labels(consume.queue).inc()
        log.warning(
            "handling failed (%r); retry %d of %d after the retry delay",
            exc,
            count + 1,
            consume.max_retries,
            extra=fields,
        )
        return "retried"

    async def _defer(self, message: AbstractIncomingMessage, count: int, fields: dict[str, Any]) -> None:
        consume = self._consume
        self._metrics.deferred.labels(consume.queue).inc()
        log.info("message %s is being handled by another delivery; looking again later", message.message_id)
        if consume.retry_exchange:
            try:
                await self._broker.publish_retry(consume, message, count)
            except Exception:
                log.warning("retry path unavailable; requeueing", exc_info=True, extra=fields)
            else:
                await message.ack()
                return
        await asyncio.sleep(REQUEUE_PAUSE_SECONDS)
        await message.nack(requeue=True)

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, detail: str, fields: dict[str, Any]
    ) -> None:
        consume = self._consume
        if not consume.dead_letter_queue and reason == "retry_path_unavailable":
            # Nowhere safe to put it: keep it in the queue rather than lose it.
            await asyncio.sleep(REQUEUE_PAUSE_SECONDS)
            await message.nack(requeue=True)
            return
        await message.reject(requeue=False)
        self._metrics.dead_lettered.labels(consume.queue, reason).inc()
        where = consume.dead_letter_queue or "nowhere: deadLetter is off for this queue, the message is dropped"
        log.error("message rejected (%s): %s; dead-lettered to %s", reason, detail, where, extra=fields)
