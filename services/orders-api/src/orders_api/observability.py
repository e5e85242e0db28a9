"""The metrics of orders-api: the HTTP golden signals every service has, and the business's own.

Logs, request ids and traces are platform_contract.telemetry's; metrics live in a registry of the
app's own, so that building the app twice in one process (the tests do) registers nothing twice.
"""

from __future__ import annotations

from prometheus_client import Counter

from platform_contract.telemetry.metrics import HttpMetrics, new_registry


class Metrics:
    def __init__(self) -> None:
        self.registry = new_registry()
        self.http = HttpMetrics(self.registry)
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
