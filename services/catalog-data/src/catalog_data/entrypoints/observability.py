"""Request ids, traces, metrics and JSON logs for every HTTP request, in one ASGI middleware.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware: the request id set in the
contextvar here is the one the route, the repository and every log line below it see.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_contract import telemetry

log = logging.getLogger("catalog_data.access")
tracer = trace.get_tracer("catalog_data")

# An incoming id is echoed and logged, so only a sane one is kept; anything else gets a fresh id.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes and scrapes come every few seconds; logging each would drown the requests that matter.
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
UNMATCHED_ROUTE = "unmatched"

# uvicorn adds color_message, an ANSI-coloured copy of the message
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id and trace id of the request being served."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        request_id = getattr(record, "request_id", "") or telemetry.request_id.get()
        if request_id:
            entry["request_id"] = request_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
        entry.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []  # through the root handler, as JSON


class HttpMetrics:
    """The golden signals of the HTTP API, labelled by route template (not raw path: one series per
    route, not one per user id)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "http_requests", "HTTP requests served", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to serve an HTTP request",
            ["method", "route", "status"],
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)


def _headers(scope: Scope) -> Mapping[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, request_id_header: str, metrics: HttpMetrics) -> None:
        self.app = app
        self.header = request_id_header.lower()
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        incoming = headers.get(self.header, "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else telemetry.new_request_id()
        token = telemetry.request_id.set(request_id)
        method, path = scope["method"], scope["path"]
        status, response_started = 500, False
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), (self.header.encode(), request_id.encode())]
            await send(message)

        with tracer.start_as_current_span(
            f"{method} {path}", context=telemetry.extract(headers), kind=trace.SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, send_with_request_id)
            except Exception as error:
                span.record_exception(error)
                span.set_status(trace.StatusCode.ERROR)
                # Answered here, not by Starlette's outer error handler, so that the 500 carries the
                # request id and the traceback is logged with it.
                log.exception("unhandled error in %s %s", method, path)
                if not response_started:
                    await send_with_request_id(
                        {
                            "type": "http.response.start",
                            "status": 500,
                            "headers": [(b"content-type", b"application/json")],
                        }
                    )
                    await send({"type": "http.response.body", "body": b'{"detail":"internal server error"}'})
            finally:
                elapsed = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
                span.update_name(f"{method} {route}")
                span.set_attributes(
                    {
                        "http.request.method": method,
                        "http.route": route,
                        "http.response.status_code": status,
                        "request.id": request_id,
                    }
                )
                self.metrics.observe(method, route, status, elapsed)
                log.log(
                    logging.DEBUG if path in _QUIET_PATHS else logging.INFO,
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
