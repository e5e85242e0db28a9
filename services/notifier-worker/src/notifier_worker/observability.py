"""The worker's Prometheus metrics. Logs, request ids and traces are platform_contract.telemetry's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from platform_contract.telemetry.metrics import new_registry


class Metrics:
    """The worker's metrics, in a registry of its own (served on /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = new_registry()
        self.registry = registry

        def per_queue(name: str, documentation: str) -> Counter:
            return Counter(name, documentation, ["queue"], registry=registry)

        self.processed = per_queue("notifier_messages_processed", "Messages handled: their notification was sent.")
        self.duplicates = per_queue(
            "notifier_messages_duplicates", "Messages acknowledged without sending: they had been handled already."
        )
        self.retried = per_queue("notifier_messages_retried", "Failed messages sent to the delayed retry path.")
        self.deferred = per_queue(
            "notifier_messages_deferred",
            "Messages put back for later because another delivery of them was being handled.",
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
