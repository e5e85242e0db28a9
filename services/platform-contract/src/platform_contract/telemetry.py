"""What every service does the same way: request ids, trace context, tracing setup.

The request id travels in the header named by REQUEST_ID_HEADER (HTTP) and in message headers
(`x-request-id`); the OpenTelemetry context travels as W3C `traceparent` in both.
"""

from __future__ import annotations

import contextvars
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


def new_request_id() -> str:
    return uuid.uuid4().hex


def setup_tracing(service_name: str, otlp_endpoint: str = "") -> TracerProvider:
    """A tracer provider for the service; spans are exported over OTLP/HTTP when an endpoint is set
    (the operator passes OTEL_EXPORTER_OTLP_ENDPOINT), and kept in-process otherwise."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    return provider


def inject(headers: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Adds the current trace context and request id to outgoing HTTP or message headers."""
    propagate.inject(headers)
    rid = request_id.get()
    if rid:
        headers[MESSAGE_REQUEST_ID_HEADER] = rid
    return headers


def extract(headers: Mapping[str, Any]) -> otel_context.Context:
    """The trace context carried by incoming headers (HTTP or message)."""
    return propagate.extract({k.lower(): str(v) for k, v in headers.items()})
