"""Logs as JSON lines carrying the request and trace ids, and the bot's Prometheus metrics."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from opentelemetry import trace
from prometheus_client import Counter, Histogram

from platform_contract import telemetry

UPDATES = Counter("telegram_bot_updates_total", "Telegram updates handled, by type and outcome", ["type", "outcome"])
UPDATE_SECONDS = Histogram("telegram_bot_update_duration_seconds", "Time spent handling one update", ["type"])
ORDERS_API_REQUESTS = Counter(
    "telegram_bot_orders_api_requests_total", "Requests to orders-api, by operation and status", ["operation", "status"]
)
ORDERS_PLACED = Counter("telegram_bot_orders_placed_total", "Orders confirmed by orders-api")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = telemetry.request_id.get()
        if rid:
            entry["request_id"] = rid
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        for key in ("update_id", "update_type", "chat_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per health probe is noise; errors still show.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiogram's own line per update says less than ours (no request or trace id)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
