"""The Prometheus side every service shares: a registry of its own and the HTTP golden signals.

A registry per app (not prometheus_client's global one), so that building the app twice in one
process (the tests do) does not register a metric twice.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, gc_collector, platform_collector, process_collector


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and garbage-collector metrics that the global one has."""
    registry = CollectorRegistry()
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    return registry


class HttpMetrics:
    """Requests served and their latency, labelled by route template (not raw path: one series per
    route, not one per user id) and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        labels = ["method", "route", "status"]
        self.requests = Counter("http_requests", "HTTP requests served.", labels, registry=registry)
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to serve an HTTP request.", labels, registry=registry
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)
