"""Wires the worker: settings in, a Worker with run()/stop() out.

Tests build the same Worker in-process and may hand it another Notifier (the outbound port);
everything else is what production runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from opentelemetry import trace

from notifier_worker.adapters import redis_store
from notifier_worker.adapters.broker import Broker
from notifier_worker.config import Settings
from notifier_worker.domain.model import OrderCreated
from notifier_worker.entrypoints.consumer import InFlight, MessageHandler
from notifier_worker.entrypoints.http import ProbeServer
from notifier_worker.observability import Metrics
from notifier_worker.service_layer.handlers import Outcome, notify_order_created
from notifier_worker.service_layer.ports import Notifier
from platform_contract.telemetry.clients import instrument_redis

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        notifier: Notifier | None = None,
        tracer: trace.Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.consumes = settings.consumes()
        if not self.consumes:
            raise RuntimeError("RABBITMQ_CONSUMES lists no queue: add one to spec.messaging.consumes")
        self.redis = instrument_redis(redis_store.connect(settings))
        self.notifier: Notifier = notifier or redis_store.RedisNotifier(self.redis, settings)
        self.processed = redis_store.RedisProcessedMessages(self.redis, settings)
        self.broker = Broker(settings.rabbitmq_url, f"{settings.service_namespace}/{settings.service_name}")
        self.metrics = metrics or Metrics()
        self.tracer = tracer or trace.get_tracer("notifier_worker")
        self.in_flight = InFlight()
        self.http = ProbeServer(settings.http_host, settings.http_port, self.metrics.registry, self.readiness)
        self._http_started = False
        self._stop_requested = asyncio.Event()
        self._stopped = False

    async def _notify(self, event: OrderCreated, message_key: str) -> Outcome:
        s = self.settings
        return await notify_order_created(
            event,
            message_key,
            notifier=self.notifier,
            processed=self.processed,
            ttl_seconds=s.idempotency_ttl_seconds,
            lease_seconds=s.claim_lease_seconds,
            timeout_seconds=s.handler_timeout_seconds,
        )

    async def readiness(self) -> tuple[bool, str]:
        if self._stop_requested.is_set():
            return False, "shutting down"
        if not self.broker.connected:
            return False, "not consuming from RabbitMQ"
        try:
            await asyncio.wait_for(self.redis.ping(), timeout=2)
        except Exception as exc:
            return False, f"Redis unreachable: {type(exc).__name__}"
        return True, "consuming " + ", ".join(c.queue for c in self.consumes)

    async def start(self) -> None:
        """Serves the probes, then consumes; raises when RabbitMQ refuses (run() retries instead)."""
        await self.start_http()
        await self.start_consuming()

    async def start_http(self) -> None:
        if not self._http_started:
            await self.http.start()
            self._http_started = True

    async def start_consuming(self) -> None:
        await self.broker.connect()
        try:
            for consume in self.consumes:
                handler = MessageHandler(
                    consume,
                    use_case=self._notify,
                    broker=self.broker,
                    metrics=self.metrics,
                    in_flight=self.in_flight,
                    tracer=self.tracer,
                    request_id_header=self.settings.request_id_header,
                )
                await self.broker.consume(consume, handler)
        except BaseException:
            await self.broker.close()
            raise
        log.info("consuming %s", ", ".join(f"{c.queue} (prefetch {c.prefetch})" for c in self.consumes))

    def request_stop(self) -> None:
        """What SIGTERM calls: run() then stops."""
        self._stop_requested.set()

    async def run(self) -> None:
        """Until request_stop(): probes at once, consuming as soon as RabbitMQ lets us."""
        try:
            await self.start_http()
            await self._consume_when_possible()
            await self._stop_requested.wait()
        finally:
            await self.stop()

    async def _consume_when_possible(self) -> None:
        # Not ready, but alive, while RabbitMQ is away or refuses: the readiness probe says so and
        # the pod is not restarted in a loop; the operator may be repairing the topology meanwhile.
        delay = self.settings.connect_backoff_seconds
        while not self._stop_requested.is_set():
            try:
                await self.start_consuming()
                return
            except Exception as exc:
                log.error("cannot consume yet (next attempt in %.0fs): %s", delay, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), timeout=delay)
            delay = min(delay * 2, self.settings.connect_backoff_max_seconds)

    async def stop(self) -> None:
        """Stops consuming, lets the messages in hand finish (bounded), then closes everything."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_requested.set()
        self.in_flight.accepting = False
        await self.broker.cancel_consumers()
        if len(self.in_flight):
            log.info("stopping: waiting for %d message(s) being handled", len(self.in_flight))
        cut = await self.in_flight.drain(self.settings.shutdown_grace_seconds)
        if cut:
            log.warning(
                "stopping: %d message(s) still running after %.0fs were cut short; RabbitMQ will redeliver them",
                cut,
                self.settings.shutdown_grace_seconds,
            )
        await self.broker.close()
        await self.redis.aclose()
        await self.http.close()
        log.info("stopped")
