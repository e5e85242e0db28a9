"""The HTTP server side of a FastAPI service: server spans by opentelemetry-instrumentation-fastapi
(continuing the caller's trace from `traceparent`), and around each request, inside that span, one
ASGI middleware for the request id, the metrics and one access log line.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware: the request id set in the
contextvar here is the one the route, the adapters and every log line below it see.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_contract import telemetry
from platform_contract.telemetry.metrics import HttpMetrics

# Probes and scrapes come every few seconds; logging each at INFO would drown the requests that matter.
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
UNMATCHED_ROUTE = "unmatched"


class RequestContextMiddleware:
    """Per request: the request id (the caller's when sane, else a new one; echoed back under the
    same header), the metrics, one access log line, and a 500 that carries the request id when the
    app raises."""

    def __init__(self, app: ASGIApp, *, request_id_header: str, metrics: HttpMetrics, access_log: str) -> None:
        self.app = app
        self.header = request_id_header.lower()
        self.metrics = metrics
        self.log = logging.getLogger(access_log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = telemetry.accept_request_id(Headers(scope=scope).get(self.header))
        token = telemetry.request_id.set(rid)
        method, path = scope["method"], scope["path"]
        status, response_started = 500, False
        started = time.perf_counter()
        span = trace.get_current_span()  # the instrumentation's server span
        # Now, not at the end: the instrumentation ends its span as soon as the response is sent.
        span.set_attribute("request.id", rid)

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), (self.header.encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as error:
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
            # Answered here, not by Starlette's outer error handler, so that the 500 carries the
            # request id and the traceback is logged with it.
            self.log.exception("unhandled error in %s %s", method, path)
            if not response_started:
                await send_with_request_id(
                    {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": b'{"detail":"internal server error"}'})
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.observe(method, route, status, elapsed)
            self.log.log(
                logging.DEBUG if path in QUIET_PATHS else logging.INFO,
                "%s %s %d",
                method,
                path,
                status,
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            telemetry.request_id.reset(token)


def instrument_app(
    app: FastAPI,
    *,
    request_id_header: str,
    metrics: HttpMetrics,
    access_log: str,
    tracer_provider: trace.TracerProvider | None = None,
) -> FastAPI:
    """Server spans, request ids, metrics and the access log for every request of `app`.

    The instrumentation puts its span outside every middleware (Starlette's error handler
    included), so the request middleware, the routes and their log lines all run inside it."""
    app.add_middleware(
        RequestContextMiddleware, request_id_header=request_id_header, metrics=metrics, access_log=access_log
    )
    telemetry.use_stable_http_conventions()
    # No spans of their own for each ASGI receive and send: one server span per request, as before.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, exclude_spans=["receive", "send"])
    return app
