"""What every service does the same way: request ids, trace context, the tracer provider.

Beside this module: `logs` (the one JSON log format), `metrics` (the Prometheus registry and the
HTTP golden signals), `web` (the request middleware and the FastAPI instrumentation, extra
`fastapi`) and `clients` (outgoing HTTP, extra `httpx`).

The request id travels in the header named by REQUEST_ID_HEADER (HTTP) and in message headers
(`x-request-id`); the OpenTelemetry context travels as W3C `traceparent` in both. Over HTTP the
OpenTelemetry instrumentation packages carry it (see `web` and `clients`); over AMQP `inject` and
`extract` below do, because opentelemetry-instrumentation-aio-pika has no release that goes with
the SDK the workspace locks (its latest pins other semantic conventions than opentelemetry-sdk).
"""

from __future__ import annotations

import contextvars
import os
import re
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

MESSAGE_REQUEST_ID_HEADER = "x-request-id"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# An incoming id is echoed, logged and passed on to other services, so only a sane one is kept.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(incoming: str | None) -> str:
    """The caller's request id when it is sane (letters, digits, `._:-`, at most 128), else a new one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


def setup_tracing(service_name: str, otlp_endpoint: str = "") -> TracerProvider:
    """The process's tracer provider; spans are exported over OTLP/HTTP when an endpoint is set
    (the operator passes OTEL_EXPORTER_OTLP_ENDPOINT), and kept in-process otherwise.

    Once per process: OpenTelemetry refuses to replace a provider that was set, so a second call
    (an app built twice in one process, as tests do) gets the first one."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    return provider


def use_stable_http_conventions() -> None:
    """Span attributes under the stable HTTP names (`http.request.method`, `http.response.status_code`),
    as the services' spans had before the instrumentation packages; OTEL_SEMCONV_STABILITY_OPT_IN
    set by the deployment still wins. Read once, when the first instrumentation starts."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")


def inject(headers: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Adds the current trace context and request id to outgoing message headers."""
    propagate.inject(headers)
    rid = request_id.get()
    if rid:
        headers[MESSAGE_REQUEST_ID_HEADER] = rid
    return headers


def extract(headers: Mapping[str, Any]) -> otel_context.Context:
    """The trace context carried by incoming headers (HTTP or message)."""
    return propagate.extract({k.lower(): str(v) for k, v in headers.items()})
