"""The one log format of the services: a JSON object a line, tied to its request and its trace.

Fields: `time` (UTC, milliseconds), `level`, `logger`, `message`, `service`, `request_id` (passed
with `extra=` or the one in hand), `trace_id` and `span_id` (of the current span), whatever else
the call passed with `extra=`, and `exception` with the traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace

from platform_contract.telemetry import request_id

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON.
# uvicorn adds color_message, an ANSI-coloured copy of the message.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.service:
            entry["service"] = self.service
        rid = getattr(record, "request_id", "") or request_id.get()
        if rid:
            entry["request_id"] = rid
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        entry.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Every log line of the process through one handler, as JSON, on `stream` (stderr unless given).

    Returns the handler; a service quiets its own noisy libraries after this call."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []  # through the root handler, as JSON
    return handler
