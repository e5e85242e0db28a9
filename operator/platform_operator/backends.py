"""What every reconcile and every deletion works with: the doors to the outside systems the operator
manages (None where it manages none), its settings, what the cluster serves, and where Events go.

Made once at startup (handlers.configure); reconcile.py and cleanup.py depend on this module, not on
each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_operator import builders
from platform_operator.postgres import Postgres
from platform_operator.rabbitmq import RabbitMQ
from platform_operator.redis_store import RedisStore
from platform_operator.settings import OperatorSettings

EventSink = Callable[[Mapping[str, Any], str, str, str], None]  # (object, type, reason, message)


@dataclass
class Monitoring:
    """Which of the Prometheus Operator's kinds the cluster serves: learnt by API discovery when the
    operator starts, then from the watch of their CRDs (handlers.py), and from an apply that finds
    the kind gone."""

    service_monitors: bool = False
    pod_monitors: bool = False

    def serves(self, kind: str) -> bool:
        return self.service_monitors if kind == "ServiceMonitor" else self.pod_monitors

    def set(self, kind: str, served: bool) -> bool:
        """Records whether `kind` is served; True when that changed."""
        if self.serves(kind) == served:
            return False
        if kind == "ServiceMonitor":
            self.service_monitors = served
        else:
            self.pod_monitors = served
        return True

    @property
    def kinds(self) -> list[tuple[str, str]]:
        return [(builders.MONITORING_API, k) for k in ("ServiceMonitor", "PodMonitor") if self.serves(k)]


def cluster_view(settings: OperatorSettings, monitoring: Monitoring) -> builders.Cluster:
    """What the builders need of the operator's settings and of the cluster."""
    return builders.Cluster(
        ingress_namespace=settings.ingress_controller_namespace,
        ingress_pod_labels=settings.ingress_controller_pod_label_map,
        scraper_namespace_labels=settings.metrics_scraper_namespace_labels,
        monitor_labels=settings.metrics_monitor_label_map,
        service_monitors=monitoring.service_monitors,
        pod_monitors=monitoring.pod_monitors,
    )


@dataclass
class Backends:
    """The outside systems and how services reach them; None where the operator does not manage it."""

    rabbitmq: RabbitMQ | None = None
    redis: RedisStore | None = None
    postgres: Postgres | None = None
    settings: OperatorSettings = field(default_factory=OperatorSettings)
    monitoring: Monitoring = field(default_factory=Monitoring)
    # At most settings.max_concurrent_reconciles at once of each sort: those that visit RabbitMQ
    # and Redis, and those that only look at the children (a Deployment's pods became ready). Two
    # pools, so that a child's change is not queued behind reconciles waiting on a busy broker.
    slots: asyncio.Semaphore | None = None
    kube_slots: asyncio.Semaphore | None = None

    def __post_init__(self) -> None:
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.settings.max_concurrent_reconciles)
        if self.kube_slots is None:
            self.kube_slots = asyncio.Semaphore(self.settings.max_concurrent_reconciles)
