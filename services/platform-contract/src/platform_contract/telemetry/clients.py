"""Outgoing calls, traced by the OpenTelemetry instrumentation packages.

HTTP (extra `httpx`): a client span and `traceparent` per call by opentelemetry-instrumentation-httpx,
and the request id in hand under REQUEST_ID_HEADER, so that one request can be followed across
services. Redis (extra `redis`): a client span per command by opentelemetry-instrumentation-redis.
Each library is imported where it is instrumented: a service installs only the extras it uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from opentelemetry import trace

from platform_contract import telemetry

if TYPE_CHECKING:
    import httpx
    import redis.asyncio as aioredis


def request_id_hook(request_id_header: str) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook that sends the request id in hand (if any) under `request_id_header`."""

    async def add_request_id(request: httpx.Request) -> None:
        rid = telemetry.request_id.get()
        if rid:
            request.headers[request_id_header] = rid

    return add_request_id


def instrument_httpx(
    client: httpx.AsyncClient, *, request_id_header: str, tracer_provider: trace.TracerProvider | None = None
) -> httpx.AsyncClient:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    hooks = client.event_hooks
    client.event_hooks = {**hooks, "request": [*hooks.get("request", []), request_id_hook(request_id_header)]}
    telemetry.use_stable_http_conventions()
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=tracer_provider)
    return client


def instrument_redis(client: aioredis.Redis, *, tracer_provider: trace.TracerProvider | None = None) -> aioredis.Redis:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client, tracer_provider=tracer_provider)
    return client
