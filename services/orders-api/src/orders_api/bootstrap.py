"""Wires orders-api: settings -> clients -> adapters -> use cases -> HTTP app. The only module that
knows every concrete class; the rest see ports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI

from orders_api.adapters import redis_store
from orders_api.adapters.rabbitmq import RabbitPublisher
from orders_api.adapters.users_data import UsersDataClient
from orders_api.config import Settings
from orders_api.entrypoints.http import create_app
from orders_api.observability import Metrics
from orders_api.service_layer.ports import StoreUnavailable
from orders_api.service_layer.services import OrderService
from platform_contract import telemetry
from platform_contract.telemetry.clients import instrument_httpx, instrument_redis

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    redis: aioredis.Redis
    http: httpx.AsyncClient
    publisher: RabbitPublisher
    service: OrderService
    metrics: Metrics

    async def start(self) -> None:
        await self.publisher.start()
        # Give the broker a moment so that a healthy start is ready at once; later it is /ready's job.
        await self.publisher.wait_connected(self.settings.ready_timeout_seconds)

    async def readiness(self) -> dict[str, str]:
        """Each backend every request needs: "ok", or why not. users-data is left out on purpose:
        its own readiness is its business, and an order API that cannot reach it answers 503."""
        checks = {"rabbitmq": self.publisher.status()}
        try:
            await asyncio.wait_for(redis_store.ping(self.redis), self.settings.ready_timeout_seconds)
            checks["redis"] = "ok"
        except (StoreUnavailable, TimeoutError) as exc:
            checks["redis"] = str(exc) or "Redis did not answer PING in time"
        return checks

    async def aclose(self) -> None:
        await self.publisher.close()
        await self.http.aclose()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        log.info("stopped: RabbitMQ, Redis and users-data connections closed")


def bootstrap(settings: Settings) -> Container:
    settings.check()
    redis = instrument_redis(redis_store.connect(settings.redis_url, timeout=settings.ready_timeout_seconds))
    # Client spans, traceparent and the request id on every call to users-data.
    http = instrument_httpx(
        httpx.AsyncClient(base_url=settings.users_data_url, timeout=settings.users_data_timeout_seconds),
        request_id_header=settings.request_id_header,
    )
    publisher = RabbitPublisher(settings.rabbitmq_url, settings.events_exchange(), app_id=settings.service_name)
    service = OrderService(
        users=UsersDataClient(http),
        orders=redis_store.RedisOrders(redis, settings.key),
        idempotency=redis_store.RedisIdempotency(redis, settings.key),
        events=publisher,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        idempotency_lock_seconds=settings.idempotency_lock_seconds,
    )
    return Container(settings, redis, http, publisher, service, Metrics())


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    telemetry.setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
    return create_app(bootstrap(settings))
