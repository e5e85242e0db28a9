"""Issue 17's day-one needs against the real API server: autoscaling, kubectl scale, dependencies, pause."""

from __future__ import annotations

import json
import time

from e2e_kube import (
    RESYNC_SECONDS,
    Operator,
    apply,
    cond_is,
    condition,
    eventually,
    get,
    kubectl,
    psvc,
    wait_ready,
    writes_by_operator,
)

DATA = {"type": "data", "image": "example/users:1", "database": {"engine": "postgres", "secretRef": {"name": "db"}}}


def deployment_replicas(name: str, ns: str) -> int | None:
    dep = get("deployment", name, ns)
    return (dep or {}).get("spec", {}).get("replicas")


def operator_owns_replicas(name: str, ns: str) -> bool:
    dep = get("deployment", name, ns) or {}
    return any(
        e.get("manager") == "platform-operator" and "f:replicas" in (e.get("fieldsV1") or {}).get("f:spec", {})
        for e in dep.get("metadata", {}).get("managedFields") or []
    )


def hold(fn, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """fn() stays true for `seconds` (several resyncs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert fn(), what
        time.sleep(0.5)


def test_autoscaling_gives_an_hpa_and_leaves_replicas_to_it(ns: str):
    apply(psvc("orders", type="api", image="example/orders:1", replicas=3), ns)
    eventually(lambda: deployment_replicas("orders", ns) == 3, what="3 replicas")
    wait_ready("orders", ns)

    # Switched on: the count the Deployment has is kept (no fall back to 1), and the HPA appears.
    auto = {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70}
    apply(psvc("orders", type="api", image="example/orders:1", autoscaling=auto), ns)
    hpa = eventually(lambda: get("hpa", "orders", ns), what="the HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "PlatformService"
    eventually(lambda: not operator_owns_replicas("orders", ns), what="the operator to give up spec.replicas")
    hold(lambda: deployment_replicas("orders", ns) == 3, RESYNC_SECONDS * 3, "the count stayed while handed over")

    # What the HPA does (here by hand: no metrics server): the operator leaves it, resync after resync.
    kubectl("scale", "deployment", "orders", "-n", ns, "--replicas=5")
    hold(lambda: deployment_replicas("orders", ns) == 5, RESYNC_SECONDS * 4, "the HPA's count stayed")
    obj = eventually(lambda: (o := get("psvc", "orders", ns)) and o["status"].get("replicas") == 5 and o)
    assert obj["status"]["replicaSummary"].endswith("/5")

    # A drifted HPA is put back.
    kubectl("patch", "hpa", "orders", "-n", ns, "--type=merge", "-p", '{"spec": {"maxReplicas": 50}}')
    eventually(lambda: get("hpa", "orders", ns)["spec"]["maxReplicas"] == 6, what="the HPA repaired")

    # Off again: the HPA goes and spec.replicas rules.
    apply(psvc("orders", type="api", image="example/orders:1", replicas=2), ns)
    eventually(lambda: get("hpa", "orders", ns) is None, what="the HPA deleted")
    eventually(lambda: deployment_replicas("orders", ns) == 2, what="replicas from the spec")


def test_replicas_and_autoscaling_together_are_refused(ns: str):
    proc = apply(
        psvc("both", type="api", image="example/x:1", replicas=3, autoscaling={"maxReplicas": 4}), ns, check=False
    )
    assert proc.returncode != 0 and "spec.replicas" in proc.stderr, proc.stderr
    proc = apply(psvc("range", type="api", image="example/x:1", autoscaling={"minReplicas": 5, "maxReplicas": 4}),
                 ns, check=False)  # fmt: skip
    assert proc.returncode != 0 and "spec.autoscaling.minReplicas" in proc.stderr, proc.stderr
    # kubectl scale on an autoscaled service is refused the same way (the scale subresource writes spec.replicas).
    apply(psvc("auto", type="worker", image="example/x:1", autoscaling={"maxReplicas": 4}), ns)
    proc = kubectl("scale", "psvc", "auto", "-n", ns, "--replicas=3", check=False)
    assert proc.returncode != 0 and "spec.replicas" in proc.stderr, proc.stderr


def test_kubectl_scale_reaches_the_deployment(ns: str):
    apply(psvc("orders", type="api", image="example/orders:1"), ns)
    wait_ready("orders", ns)
    kubectl("scale", "psvc", "orders", "-n", ns, "--replicas=3")
    eventually(lambda: deployment_replicas("orders", ns) == 3, what="the Deployment scaled")
    obj = wait_ready("orders", ns)
    assert obj["spec"]["replicas"] == 3
    assert obj["status"]["replicas"] == 3
    assert obj["status"]["selector"] == "app.kubernetes.io/name=orders,app.kubernetes.io/instance=orders"
    scale = json.loads(
        kubectl("get", "--raw", f"/apis/platform.dev/v1alpha1/namespaces/{ns}/platformservices/orders/scale").stdout
    )
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (3, 3)
    assert scale["status"]["selector"] == obj["status"]["selector"]


def test_dependencies_ready_follows_the_data_service(ns: str, operator: Operator):
    apply(psvc("orders", type="api", image="example/orders:1", dependsOn=["users"]), ns)

    obj = cond_is("orders", ns, "DependenciesReady", "False", "DependencyNotFound")
    assert "users" in condition(obj, "DependenciesReady")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    # Once the pods are ready (the first aspect that is not True names Ready's reason), the dependency is why.
    cond_is("orders", ns, "Ready", "False", "DependencyNotFound")

    apply(psvc("users", type="worker", image="example/users:1"), ns)
    cond_is("orders", ns, "DependenciesReady", "False", "DependencyNotData", timeout=RESYNC_SECONDS * 2)
    kubectl("delete", "psvc", "users", "-n", ns)
    cond_is("orders", ns, "DependenciesReady", "False", "DependencyNotFound")

    mark = operator.log_mark()
    created = time.monotonic()
    apply(psvc("users", **DATA), ns)
    cond_is("orders", ns, "DependenciesReady", "True", "Found", timeout=RESYNC_SECONDS * 2)
    assert time.monotonic() - created < RESYNC_SECONDS * 2
    # The data service's own watch event woke the dependent (not only its resync).
    assert f"{ns}/users appeared: reconciling its dependents orders." in operator.log_since(mark)
    wait_ready("orders", ns)


def test_paused_service_gets_no_writes_until_resumed(ns: str, audit_log: str | None):
    apply(psvc("orders", type="api", image="example/orders:1"), ns)
    wait_ready("orders", ns)
    kubectl("annotate", "psvc", "orders", "-n", ns, "platform.dev/paused=true")
    cond_is("orders", ns, "Ready", "Unknown", "Paused")
    events = kubectl("get", "events", "-n", ns, "--field-selector", "reason=Paused", "-o", "name").stdout
    assert events.strip(), "an Event Paused"
    time.sleep(1)  # the pause's own status write and Event settle
    start = time.time()

    apply(psvc("orders", type="api", image="example/orders:2"), ns)
    time.sleep(RESYNC_SECONDS * 4)  # several resyncs
    assert get("deployment", "orders", ns)["spec"]["template"]["spec"]["containers"][0]["image"] == "example/orders:1"
    if audit_log:
        assert writes_by_operator(audit_log, ns, start) == []

    kubectl("annotate", "psvc", "orders", "-n", ns, "platform.dev/paused-")
    eventually(
        lambda: (
            get("deployment", "orders", ns)["spec"]["template"]["spec"]["containers"][0]["image"] == "example/orders:2"
        ),
        what="the update landed after resuming",
    )
    obj = wait_ready("orders", ns)
    assert condition(obj, "Ready")["reason"] == "AllReady"


def test_deleting_a_paused_service_waits_for_the_resume(ns: str):
    apply(psvc("orders", type="api", image="example/orders:1"), ns)
    wait_ready("orders", ns)
    kubectl("annotate", "psvc", "orders", "-n", ns, "platform.dev/paused=true")
    cond_is("orders", ns, "Ready", "Unknown", "Paused")
    kubectl("delete", "psvc", "orders", "-n", ns, "--wait=false")
    hold(lambda: get("psvc", "orders", ns) is not None, RESYNC_SECONDS * 2, "kept while paused")
    kubectl("annotate", "psvc", "orders", "-n", ns, "platform.dev/paused-")
    eventually(lambda: get("psvc", "orders", ns) is None, timeout=60, what="deleted after resuming")
