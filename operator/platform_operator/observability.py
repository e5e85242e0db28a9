"""Metrics, traces and JSON logs of the operator, in one place.

Every reconcile is a span (and a duration and a result in the metrics); every call to an outside
system (the API server, RabbitMQ, Redis) is a child span and a duration, and an error count when
it fails. Log lines are JSON and carry the object, the reconcile id and the trace id, so a log line
leads to its trace. Tracing exports over OTLP when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) variable is set.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()
RECONCILES = Counter(
    "platform_reconciles", "Reconciles by result and service type.", ["result", "type"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "platform_reconcile_duration_seconds",
    "Time of one reconcile.",
    ["type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
CALL_SECONDS = Histogram(
    "platform_outside_call_duration_seconds",
    "Time of calls to outside systems.",
    ["system", "operation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
CALL_ERRORS = Counter(
    "platform_outside_call_errors", "Failed calls to outside systems.", ["system", "operation"], registry=REGISTRY
)
MANAGED = Gauge(
    "platform_managed_services", "PlatformServices by type and readiness.", ["type", "ready"], registry=REGISTRY
)
CACHE_READS = Counter(
    "platform_cached_reads",
    "Children read from the watch's last report instead of a request to the API server, by kind.",
    ["kind"],
    registry=REGISTRY,
)
DRIFT_REPAIRS = Counter(
    "platform_drift_repairs", "Children restored after a change by hand, by kind.", ["kind"], registry=REGISTRY
)

tracer = trace.get_tracer("platform_operator")
reconcile_id: contextvars.ContextVar[str] = contextvars.ContextVar("reconcile_id", default="")
current_object: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("current_object", default=("", ""))


def setup(metrics_port: int | None) -> None:
    """Starts the metrics endpoint and the tracer provider; once per process."""
    if metrics_port:
        start_http_server(metrics_port, registry=REGISTRY)
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "platform-operator")})
    )
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the standard variables
    trace.set_tracer_provider(provider)


@asynccontextmanager
async def reconciling(namespace: str, name: str, service_type: str) -> AsyncIterator[dict[str, str]]:
    """A span, an id and a duration for one reconcile; the caller sets result['result']."""
    result = {"result": "error"}
    token_id = reconcile_id.set(uuid.uuid4().hex[:12])
    token_obj = current_object.set((namespace, name))
    start = time.monotonic()
    with tracer.start_as_current_span(
        "reconcile",
        attributes={"k8s.namespace.name": namespace, "platform.service": name, "platform.type": service_type},
    ) as span:
        try:
            yield result
        finally:
            span.set_attribute("platform.result", result["result"])
            RECONCILE_SECONDS.labels(service_type).observe(time.monotonic() - start)
            RECONCILES.labels(result["result"], service_type).inc()
            reconcile_id.reset(token_id)
            current_object.reset(token_obj)


@contextmanager
def outside_call(system: str, operation: str) -> Iterator[None]:
    """A child span and a duration for one call to the API server, RabbitMQ or Redis."""
    start = time.monotonic()
    with tracer.start_as_current_span(f"{system} {operation}", attributes={"platform.system": system}) as span:
        try:
            yield
        except Exception as exc:
            CALL_ERRORS.labels(system, operation).inc()
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            CALL_SECONDS.labels(system, operation).observe(time.monotonic() - start)


class Readiness:
    """Ready state of every service this process reconciled, for the MANAGED gauge (one per
    operator, held with the reconcile state: nothing of it lives at module level)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[str, str]] = {}

    def record(self, namespace: str, name: str, service_type: str, ready: str) -> None:
        old = self._seen.get((namespace, name))
        if old == (service_type, ready):
            return
        if old is not None:
            MANAGED.labels(*old).dec()
        MANAGED.labels(service_type, ready).inc()
        self._seen[(namespace, name)] = (service_type, ready)

    def forget(self, namespace: str, name: str) -> None:
        old = self._seen.pop((namespace, name), None)
        if old is not None:
            MANAGED.labels(*old).dec()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the object and trace it concerns."""

    def format(self, record: logging.LogRecord) -> str:
        namespace, name = current_object.get()
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # kopf's per-object logger carries the object in `k8s_ref` (its own field).
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            namespace, name = ref.get("namespace") or namespace, ref.get("name") or name
        if name:
            line["namespace"], line["object"] = namespace, name
        rid = reconcile_id.get()
        if rid:
            line["reconcile_id"] = rid
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            line["trace_id"] = format(ctx.trace_id, "032x")
            line["span_id"] = format(ctx.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kopf reports every handler and timer run at INFO; keep its warnings and errors, and ours.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
