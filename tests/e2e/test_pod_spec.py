"""spec.pod against the real API server: every field under the restricted profile, the spread and the budget."""

from __future__ import annotations

import json
import time

from e2e_kube import RESYNC_SECONDS, Operator, apply, eventually, get, kubectl, psvc, wait_ready

SELECTOR = "app.kubernetes.io/name=orders,app.kubernetes.io/instance=orders"


def every_field(ns: str) -> dict:  # type: ignore[type-arg]
    return {
        "imagePullSecrets": [{"name": "registry"}],
        "serviceAccountName": "orders-sa",
        "automountServiceAccountToken": True,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "shop", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 10,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"team": "shop"}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "annotations": {"team.example/owner": "shop"},
        "labels": {"team": "shop"},
        "volumes": [
            {"name": "config", "mountPath": "/etc/orders", "configMap": {"name": "orders-config"}},
            {"name": "certs", "mountPath": "/etc/certs", "secret": {"secretName": "orders-certs", "defaultMode": 288}},
            {"name": "scratch", "mountPath": "/scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}},
        ],
        "priorityClassName": f"{ns}-high",
    }


def pods(ns: str) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(kubectl("get", "pods", "-n", ns, "-l", SELECTOR, "-o", "json").stdout)["items"]


def test_a_pod_spec_with_every_field_passes_the_restricted_profile(ns: str, operator: Operator):
    kubectl("create", "serviceaccount", "orders-sa", "-n", ns)
    kubectl("create", "configmap", "orders-config", "-n", ns, "--from-literal=mode=test")
    kubectl("create", "secret", "generic", "orders-certs", "-n", ns, "--from-literal=tls.crt=none")
    kubectl("create", "priorityclass", f"{ns}-high", "--value=1000")
    try:
        apply(psvc("orders", type="api", image="example/orders:1", replicas=2, pod=every_field(ns)), ns)
        dep = eventually(lambda: get("deployment", "orders", ns), what="the Deployment")
        pod = dep["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "orders-sa"
        assert pod["automountServiceAccountToken"] is True
        assert pod["imagePullSecrets"] == [{"name": "registry"}]
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert pod["tolerations"][0]["key"] == "dedicated"
        assert "podAntiAffinity" in pod["affinity"]
        assert pod["priorityClassName"] == f"{ns}-high"
        assert pod["topologySpreadConstraints"][0]["labelSelector"] == {
            "matchLabels": {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": "orders"}
        }
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["config"]["readOnly"] is True and mounts["certs"]["readOnly"] is True
        assert not mounts["scratch"].get("readOnly")
        meta = dep["spec"]["template"]["metadata"]
        assert meta["labels"]["team"] == "shop" and meta["annotations"]["team.example/owner"] == "shop"

        # The namespace enforces the restricted profile: kube-controller-manager's ReplicaSet could
        # create the pods only because they hold it (a refused pod shows as ReplicaFailure instead).
        made = eventually(lambda: len(p := pods(ns)) == 2 and p, what="2 pods admitted under restricted")
        for p in made:
            assert p["spec"]["serviceAccountName"] == "orders-sa"
            assert p["spec"]["priority"] == 1000
            assert {v["name"] for v in p["spec"]["volumes"]} >= {"tmp", "config", "certs", "scratch"}
        wait_ready("orders", ns)
        # What the API server keeps of every field equals what the operator applies: resyncs write nothing.
        time.sleep(1)
        mark = operator.log_mark()
        time.sleep(RESYNC_SECONDS * 3)
        wrote = [line for line in operator.log_since(mark).splitlines() if f"Reconciled {ns}/orders: wrote" in line]
        assert not [line for line in wrote if "status only" not in line], wrote

        # Two replicas: a PodDisruptionBudget owned by the service.
        pdb = eventually(lambda: get("pdb", "orders", ns), what="the PodDisruptionBudget")
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "orders",
                                                           "app.kubernetes.io/instance": "orders"}}  # fmt: skip
        assert pdb["metadata"]["ownerReferences"][0]["kind"] == "PlatformService"
        # Deleted by hand, it comes back.
        kubectl("delete", "pdb", "orders", "-n", ns)
        eventually(lambda: get("pdb", "orders", ns), what="the PodDisruptionBudget restored")

        # Back to one replica: the budget goes.
        apply(psvc("orders", type="api", image="example/orders:1", replicas=1, pod=every_field(ns)), ns)
        eventually(lambda: get("pdb", "orders", ns) is None, what="the PodDisruptionBudget deleted")
    finally:
        kubectl("delete", "priorityclass", f"{ns}-high", "--wait=false", check=False)


def test_default_spread_comes_and_goes_with_replicas(ns: str):
    apply(psvc("orders", type="worker", image="example/orders:1", replicas=3), ns)

    def spread() -> list | None:  # type: ignore[type-arg]
        dep = get("deployment", "orders", ns)
        return (dep or {}).get("spec", {}).get("template", {}).get("spec", {}).get("topologySpreadConstraints")

    constraints = eventually(spread, what="the default spread")
    assert constraints[0]["topologyKey"] == "kubernetes.io/hostname"
    assert constraints[0]["whenUnsatisfiable"] == "ScheduleAnyway"
    eventually(lambda: get("pdb", "orders", ns), what="the PodDisruptionBudget")
    apply(psvc("orders", type="worker", image="example/orders:1"), ns)
    eventually(lambda: spread() is None, what="no spread with one replica")
    eventually(lambda: get("pdb", "orders", ns) is None, what="the PodDisruptionBudget deleted")


CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"


def schedulable_nodes() -> list[str]:
    """Nodes a pod tolerating the control plane's taint may land on."""
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return [
        n["metadata"]["name"]
        for n in nodes
        if not n["spec"].get("unschedulable")
        and all(t.get("key") == CONTROL_PLANE_TAINT for t in n["spec"].get("taints", []))
    ]


def test_two_replicas_land_on_two_nodes_under_a_budget(ns: str):
    """The default spread at work: kwok's two simulated nodes, or kind's control plane and worker
    (the service tolerates the control plane's taint, as a team's spec.pod may)."""
    nodes = schedulable_nodes()
    assert len(nodes) >= 2, f"the spread needs two nodes, not {nodes} (hack/kwok-node.yaml, kind-config.yaml)"
    pod = {"tolerations": [{"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]}
    small = {"requests": {"cpu": "10m", "memory": "16Mi", "ephemeral-storage": "16Mi"}, "limits": {"memory": "64Mi"}}
    apply(psvc("orders", type="worker", image="example/orders:1", replicas=2, pod=pod, resources=small), ns)

    def placed() -> list[str] | None:
        names = [p["spec"].get("nodeName") for p in pods(ns) if not p["metadata"].get("deletionTimestamp")]
        return names if len(names) == 2 and all(names) else None

    on = eventually(placed, what="two pods scheduled")
    assert on[0] != on[1], f"both replicas on {on[0]} (nodes: {nodes})"
    pdb = eventually(lambda: get("pdb", "orders", ns), what="the PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    labels = pods(ns)[0]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    # The disruption controller counts both pods and wants one of them up at any time.
    def counted() -> dict | None:  # type: ignore[type-arg]
        st = (get("pdb", "orders", ns) or {}).get("status") or {}
        return st if st.get("expectedPods") == 2 else None

    status = eventually(counted, what="the budget counting both pods")
    assert status["desiredHealthy"] == 1


def refused(ns: str, pod: dict) -> str:  # type: ignore[type-arg]
    proc = apply(psvc("bad", type="api", image="example/x:1", pod=pod), ns, check=False)
    assert proc.returncode != 0, "accepted"
    return proc.stderr


def test_what_would_break_the_profile_or_the_operators_labels_is_refused(ns: str):
    # Fields the schema does not offer are refused by name (kubectl's strict field validation).
    assert "spec.pod.hostNetwork" in refused(ns, {"hostNetwork": True})
    assert "spec.pod.securityContext" in refused(ns, {"securityContext": {"runAsUser": 0}})
    err = refused(ns, {"volumes": [{"name": "root", "mountPath": "/host", "hostPath": {"path": "/"}}]})
    assert 'spec.pod.volumes[name="root"].hostPath: field not declared in schema' in err, err
    err = refused(ns, {"volumes": [{"name": "x", "mountPath": "/x"}]})
    assert "spec.pod.volumes[0]" in err and "exactly one of configMap, secret and emptyDir" in err, err
    err = refused(ns, {"volumes": [{"name": "x", "mountPath": "/tmp", "emptyDir": {}}]})
    assert "spec.pod.volumes[0].mountPath" in err, err
    err = refused(ns, {"labels": {"app.kubernetes.io/name": "other"}})
    assert "spec.pod.labels" in err and "belong to the operator" in err, err
    err = refused(ns, {"labels": {"data.platform.dev/users": "client"}})
    assert "spec.pod.labels" in err, err
    err = refused(ns, {"annotations": {"platform.dev/paused": "true"}})
    assert "spec.pod.annotations" in err, err
    assert get("psvc", "bad", ns) is None
