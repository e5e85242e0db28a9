"""The bot's Prometheus metrics (in the global registry, served on /metrics). Logs, request ids and
traces are platform_contract.telemetry's."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPDATES = Counter("telegram_bot_updates_total", "Telegram updates handled, by type and outcome", ["type", "outcome"])
UPDATE_SECONDS = Histogram("telegram_bot_update_duration_seconds", "Time spent handling one update", ["type"])
ORDERS_API_REQUESTS = Counter(
    "telegram_bot_orders_api_requests_total", "Requests to orders-api, by operation and status", ["operation", "status"]
)
ORDERS_PLACED = Counter("telegram_bot_orders_placed_total", "Orders confirmed by orders-api")
