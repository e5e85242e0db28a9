"""spec.metrics: a ServiceMonitor or PodMonitor where the cluster serves them, prometheus.io annotations elsewhere."""

from __future__ import annotations

import pytest

from platform_operator import builders, handlers
from platform_operator.backends import Monitoring, cluster_view
from platform_operator.kube import RefusedError, UnavailableError
from platform_operator.settings import OperatorSettings

KINDS = ["data", "api", "bot-polling", "bot-webhook", "worker"]
WITH_SERVICE = {"data", "api", "bot-webhook"}
SELECTOR = {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": "orders"}
NO_MONITORS = builders.Cluster()
MONITORS = builders.Cluster(service_monitors=True, pod_monitors=True)


def annotations(svc, cluster):
    deployment = builders.build_deployment(svc, "d", scrape=builders.scraped_by_annotations(svc, cluster))
    return deployment["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("kind", KINDS)
def test_without_the_prometheus_operator_every_type_is_scraped_by_annotations(make_kind, kind):
    svc = make_kind(kind)
    assert builders.build_monitor(svc, NO_MONITORS) is None
    assert annotations(svc, NO_MONITORS) == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/metrics",
        "platform.dev/config-hash": "d",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_with_the_prometheus_operator_a_monitor_and_no_annotations(make_kind, kind):
    svc = make_kind(kind)
    monitor = builders.build_monitor(svc, MONITORS)
    assert monitor is not None
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"] == "orders"
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "PlatformService"
    assert monitor["spec"]["selector"] == {"matchLabels": SELECTOR}
    if kind in WITH_SERVICE:
        assert monitor["kind"] == "ServiceMonitor"
        assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics"}]
    else:
        assert monitor["kind"] == "PodMonitor"
        assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics"}]
    assert not any(k.startswith("prometheus.io/") for k in annotations(svc, MONITORS))


def test_only_the_served_kind_is_made(make_kind):
    only_service_monitors = builders.Cluster(service_monitors=True)
    assert builders.build_monitor(make_kind("api"), only_service_monitors) is not None
    worker = make_kind("worker")
    assert builders.build_monitor(worker, only_service_monitors) is None
    assert annotations(worker, only_service_monitors)["prometheus.io/scrape"] == "true"


@pytest.mark.parametrize("cluster", [NO_MONITORS, MONITORS], ids=["annotations", "monitors"])
def test_disabled_means_neither(make_kind, cluster):
    svc = make_kind("api", metrics={"enabled": False})
    assert builders.build_monitor(svc, cluster) is None
    assert annotations(svc, cluster) == {"platform.dev/config-hash": "d"}


def test_a_port_of_its_own_is_named_metrics_on_the_container_the_service_and_the_monitor(make_kind):
    svc = make_kind("api", port=8080, metrics={"port": 9100, "path": "/prom"})
    container = builders.build_deployment(svc, "d")["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9100, "protocol": "TCP"},
    ]
    service = builders.build_service(svc)
    assert service is not None
    assert {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"} in service["spec"]["ports"]
    monitor = builders.build_monitor(svc, MONITORS)
    assert monitor is not None
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/prom"}]
    assert annotations(svc, NO_MONITORS)["prometheus.io/port"] == "9100"
    assert annotations(svc, NO_MONITORS)["prometheus.io/path"] == "/prom"


def test_the_same_port_as_http_adds_no_port(make_kind):
    svc = make_kind("api", metrics={"port": 8000})
    container = builders.build_deployment(svc, "d")["spec"]["template"]["spec"]["containers"][0]
    assert [p["name"] for p in container["ports"]] == ["http"]
    service = builders.build_service(svc)
    assert service is not None and [p["name"] for p in service["spec"]["ports"]] == ["http"]


def test_monitor_labels_for_a_prometheus_selector_never_replace_ours(make_kind):
    cluster = builders.Cluster(
        service_monitors=True, monitor_labels={"release": "kps", "app.kubernetes.io/name": "other"}
    )
    monitor = builders.build_monitor(make_kind("api"), cluster)
    assert monitor is not None
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["metadata"]["labels"]["app.kubernetes.io/name"] == "orders"


def test_a_users_prometheus_annotation_yields_to_the_operators(make_kind):
    svc = make_kind("api", pod={"annotations": {"prometheus.io/port": "1", "team": "shop"}})
    got = annotations(svc, NO_MONITORS)
    assert got["prometheus.io/port"] == "8000" and got["team"] == "shop"


def test_monitoring_records_what_is_served_and_says_when_it_changed():
    seen = Monitoring()
    assert seen.kinds == []
    assert seen.set("ServiceMonitor", True) is True
    assert seen.set("ServiceMonitor", True) is False
    assert seen.kinds == [("monitoring.coreos.com/v1", "ServiceMonitor")]
    assert seen.set("PodMonitor", True) is True
    assert seen.set("ServiceMonitor", False) is True
    assert seen.kinds == [("monitoring.coreos.com/v1", "PodMonitor")]


def test_the_settings_reach_the_builders(monkeypatch):
    monkeypatch.setenv("PLATFORM_INGRESS_CONTROLLER_NAMESPACE", "ingress-traefik")
    monkeypatch.setenv("PLATFORM_INGRESS_CONTROLLER_POD_LABELS", "app.kubernetes.io/name=traefik")
    monkeypatch.setenv("PLATFORM_METRICS_SCRAPER_NAMESPACE_SELECTOR", "team=observability, tier = infra")
    monkeypatch.setenv("PLATFORM_METRICS_MONITOR_LABELS", "release=kps")
    cluster = cluster_view(OperatorSettings(), Monitoring(service_monitors=True))
    assert cluster.ingress_namespace == "ingress-traefik"
    assert cluster.ingress_pod_labels == {"app.kubernetes.io/name": "traefik"}
    assert cluster.scraper_namespace_labels == {"team": "observability", "tier": "infra"}
    assert cluster.monitor_labels == {"release": "kps"}
    assert (cluster.service_monitors, cluster.pod_monitors) == (True, False)


def test_default_settings():
    cluster = cluster_view(OperatorSettings(), Monitoring())
    assert cluster.ingress_namespace == "ingress-nginx"
    assert cluster.ingress_pod_labels == {}
    assert cluster.scraper_namespace_labels == {"kubernetes.io/metadata.name": "monitoring"}


class FakeDiscovery:
    def __init__(self, kinds: set[str] | Exception) -> None:
        self.kinds = kinds

    async def served_kinds(self, api_version: str) -> set[str]:
        assert api_version == "monitoring.coreos.com/v1"
        if isinstance(self.kinds, Exception):
            raise self.kinds
        return self.kinds


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        ({"ServiceMonitor", "PodMonitor", "Probe"}, (True, True)),
        ({"ServiceMonitor"}, (True, False)),
        (set(), (False, False)),
        (UnavailableError("down"), (False, False)),  # the CRDs' watch tells later
        (RefusedError("403"), (False, False)),
    ],
)
async def test_discovery_at_start(served, expected):
    found = await handlers._discover_monitoring(FakeDiscovery(served))  # type: ignore[arg-type]
    assert (found.service_monitors, found.pod_monitors) == expected


def crd(*, established: bool = True, served: bool = True, deleting: bool = False) -> dict:
    return {
        "metadata": {
            "name": "servicemonitors.monitoring.coreos.com",
            **({"deletionTimestamp": "x"} if deleting else {}),
        },
        "spec": {"versions": [{"name": "v1", "served": served}]},
        "status": {"conditions": [{"type": "Established", "status": "True" if established else "False"}]},
    }


@pytest.mark.parametrize(
    ("body", "serves"),
    [(crd(), True), (crd(established=False), False), (crd(served=False), False), (crd(deleting=True), False)],
    ids=["established", "not-yet", "v1-not-served", "being-deleted"],
)
def test_a_monitor_crd_counts_once_established_and_until_deleted(body, serves):
    assert handlers._serves_v1(body) is serves
