"""spec.metrics against the real API server: annotations without the Prometheus Operator's CRDs,
a ServiceMonitor and a PodMonitor once they are installed, and annotations again when they go."""

from __future__ import annotations

from pathlib import Path

from e2e_kube import apply, eventually, get, kubectl, psvc

MONITOR_CRDS = ("servicemonitors", "podmonitors")
SELECTOR = {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": "orders"}


def scrape_annotations(name: str, ns: str) -> dict[str, str]:
    dep = get("deployment", name, ns) or {}
    found = dep.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    return {k: v for k, v in found.items() if k.startswith("prometheus.io/")}


def install(crds: Path) -> None:
    for plural in MONITOR_CRDS:
        kubectl("apply", "--server-side", "-f", str(crds / f"monitoring.coreos.com_{plural}.yaml"))
    for plural in MONITOR_CRDS:
        kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{plural}.monitoring.coreos.com")


def uninstall() -> None:
    for plural in MONITOR_CRDS:
        kubectl("delete", "crd", f"{plural}.monitoring.coreos.com", "--ignore-not-found", "--timeout=60s", check=False)


def test_monitors_with_the_prometheus_operators_crds_annotations_without(ns: str, prometheus_operator_crds: Path):
    uninstall()  # a run cut short may have left them
    api = psvc("orders", type="api", image="example/orders:1")
    worker = psvc("notifier", type="worker", image="example/notifier:1", metrics={"port": 9100, "path": "/prom"})
    apply(api, ns)
    apply(worker, ns)
    want_api = {"prometheus.io/scrape": "true", "prometheus.io/port": "8000", "prometheus.io/path": "/metrics"}
    want_worker = {"prometheus.io/scrape": "true", "prometheus.io/port": "9100", "prometheus.io/path": "/prom"}
    eventually(lambda: scrape_annotations("orders", ns) == want_api, what="orders' scrape annotations")
    eventually(lambda: scrape_annotations("notifier", ns) == want_worker, what="notifier's scrape annotations")
    ports = get("deployment", "notifier", ns)["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in ports

    try:
        install(prometheus_operator_crds)
        # The CRDs' watch tells the operator: no resync or restart needed.
        sm = eventually(lambda: get("servicemonitor", "orders", ns), what="the ServiceMonitor")
        assert sm["spec"]["selector"] == {"matchLabels": SELECTOR}
        assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics"}]
        assert sm["metadata"]["ownerReferences"][0]["kind"] == "PlatformService"
        pm = eventually(lambda: get("podmonitor", "notifier", ns), what="the PodMonitor")
        assert pm["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/prom"}]
        assert get("podmonitor", "orders", ns) is None and get("servicemonitor", "notifier", ns) is None
        eventually(lambda: scrape_annotations("orders", ns) == {}, what="orders' annotations dropped")
        eventually(lambda: scrape_annotations("notifier", ns) == {}, what="notifier's annotations dropped")

        # A monitor deleted by hand comes back; one no longer wanted goes.
        kubectl("delete", "servicemonitor", "orders", "-n", ns)
        eventually(lambda: get("servicemonitor", "orders", ns), what="the ServiceMonitor restored")
        apply(psvc("orders", type="api", image="example/orders:1", metrics={"enabled": False}), ns)
        apply(psvc("notifier", type="worker", image="example/notifier:1", metrics={"enabled": False}), ns)
        eventually(lambda: get("servicemonitor", "orders", ns) is None, what="the ServiceMonitor deleted")
        eventually(lambda: get("podmonitor", "notifier", ns) is None, what="the PodMonitor deleted")
        assert scrape_annotations("orders", ns) == {}
        apply(api, ns)
        apply(worker, ns)
        eventually(lambda: get("servicemonitor", "orders", ns), what="the ServiceMonitor again")
        eventually(lambda: get("podmonitor", "notifier", ns), what="the PodMonitor again")
    finally:
        uninstall()

    # The CRDs gone (their objects with them): the annotations come back.
    eventually(lambda: scrape_annotations("orders", ns) == want_api, what="orders' annotations back")
    eventually(lambda: scrape_annotations("notifier", ns) == want_worker, what="notifier's annotations back")
