"""Structured logs and Prometheus metrics.

Logs are one JSON object a line, carrying the request id of the message being handled (from its
`x-request-id` header) and the trace and span ids, so a log line leads to its trace.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)

from platform_contract.telemetry import request_id

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "") -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._service:
            out["service"] = self._service
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            out["request_id"] = rid
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            out["trace_id"] = format(span.trace_id, "032x")
            out["span_id"] = format(span.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO", service: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiormq logs every reconnect attempt at length; its summary in our own lines is enough.
    logging.getLogger("aiormq").setLevel(logging.WARNING)


class Metrics:
    """The worker's metrics, in a registry of its own (served on /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            process_collector.ProcessCollector(registry=registry)
            platform_collector.PlatformCollector(registry=registry)
            gc_collector.GCCollector(registry=registry)
        self.registry = registry
        self.processed = Counter(
            "notifier_messages_processed",
            "Messages handled: their notification was sent.",
            ["queue"],
            registry=registry,
        )
        self.duplicates = Counter(
            "notifier_messages_duplicates",
            "Messages acknowledged without sending: they had been handled already.",
            ["queue"],
            registry=registry,
        )
        self.retried = Counter(
            "notifier_messages_retried", "Failed messages sent to the delayed retry path.", ["queue"], registry=registry
        )
        self.deferred = Counter(
            "notifier_messages_deferred",
            "Messages put back for later because another delivery of them was being handled.",
            ["queue"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "notifier_messages_dead_lettered",
            "Messages rejected into the dead-letter queue (reason: poison or retries_exhausted).",
            ["queue", "reason"],
            registry=registry,
        )
        self.handling = Histogram(
            "notifier_message_handling_seconds",
            "Time to handle one message, by outcome.",
            ["queue", "outcome"],
            registry=registry,
        )
        self.in_flight = Gauge("notifier_messages_in_flight", "Messages being handled now.", registry=registry)
