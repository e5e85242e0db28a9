"""Structured logs and Prometheus metrics, the same in every request.

Metrics live in a registry of the app's own (not prometheus_client's global one), so that building
the app twice in one process (the tests do) does not register a metric twice.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Histogram, gc_collector, platform_collector, process_collector

from platform_contract import telemetry


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id and trace id that tie it to a request."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = telemetry.request_id.get()
        if rid:
            entry["request_id"] = rid
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
        for field in ("service", "method", "path", "status", "duration_ms", "order_id"):
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The request middleware logs each request once, with its id; uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.orders_created = Counter(
            "orders_created_total", "Orders placed (events published).", registry=self.registry
        )
        self.idempotent_replays = Counter(
            "orders_idempotent_replays_total",
            "POST /orders answered from a stored response (repeated Idempotency-Key).",
            registry=self.registry,
        )
        self.dependency_failures = Counter(
            "orders_dependency_failures_total",
            "Requests failed because a backend was unavailable.",
            ["dependency"],
            registry=self.registry,
        )
