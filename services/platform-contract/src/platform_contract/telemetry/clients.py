"""Outgoing HTTP: client spans and `traceparent` by opentelemetry-instrumentation-httpx, and the
request id in hand under REQUEST_ID_HEADER, so that one request can be followed across services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from platform_contract import telemetry


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
    hooks = client.event_hooks
    client.event_hooks = {**hooks, "request": [*hooks.get("request", []), request_id_hook(request_id_header)]}
    telemetry.use_stable_http_conventions()
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=tracer_provider)
    return client
