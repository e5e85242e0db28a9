"""spec.autoscaling: the HorizontalPodAutoscaler, a Deployment without replicas, and the count status shows."""

from __future__ import annotations

import pytest

from platform_operator import builders, conditions
from platform_operator.children import owns_replicas
from platform_operator.drift import holds
from platform_operator.status import deployment_condition, desired_replicas


def hpa_metrics(hpa):
    return {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}


def test_no_autoscaling_no_hpa_and_the_deployment_carries_replicas(make_svc):
    svc = make_svc(type="api", replicas=3)
    assert builders.build_hpa(svc) is None
    assert builders.build_deployment(svc, "d")["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("targets", "metrics"),
    [
        ({}, {"cpu": 80}),  # the HorizontalPodAutoscaler's own default, written out
        ({"targetCPUUtilizationPercentage": 60}, {"cpu": 60}),
        ({"targetMemoryUtilizationPercentage": 70}, {"memory": 70}),
        ({"targetCPUUtilizationPercentage": 50, "targetMemoryUtilizationPercentage": 90}, {"cpu": 50, "memory": 90}),
    ],
    ids=["default-cpu", "cpu", "memory", "both"],
)
def test_hpa_aims_at_the_deployment_with_the_given_targets(make_kind, targets, metrics):
    svc = make_kind("worker", autoscaling={"minReplicas": 2, "maxReplicas": 5, **targets})
    hpa = builders.build_hpa(svc)
    assert hpa is not None
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["metadata"]["name"] == "orders"
    assert hpa["metadata"]["ownerReferences"][0]["controller"] is True
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa_metrics(hpa) == metrics
    assert all(m["resource"]["target"]["type"] == "Utilization" for m in hpa["spec"]["metrics"])


def test_min_replicas_defaults_to_one(make_svc):
    hpa = builders.build_hpa(make_svc(type="api", autoscaling={"maxReplicas": 4}))
    assert hpa is not None and hpa["spec"]["minReplicas"] == 1


def test_under_autoscaling_the_deployment_leaves_replicas_out(make_svc):
    dep = builders.build_deployment(make_svc(type="api", autoscaling={"maxReplicas": 4}), "d")
    assert "replicas" not in dep["spec"]


def test_drift_check_ignores_the_count_the_hpa_set(make_svc):
    # The HorizontalPodAutoscaler moved the live Deployment to 7 pods: that is not drift.
    want = builders.build_deployment(make_svc(type="api", autoscaling={"maxReplicas": 9}), "d")
    live = {**want, "spec": {**want["spec"], "replicas": 7}}
    assert holds(want, live)


def test_pod_selector_is_a_string_of_the_deployment_selector(make_svc):
    svc = make_svc(type="api")
    assert builders.pod_selector(svc) == "app.kubernetes.io/name=orders,app.kubernetes.io/instance=orders"
    matched = builders.build_deployment(svc, "d")["spec"]["selector"]["matchLabels"]
    assert builders.pod_selector(svc) == ",".join(f"{k}={v}" for k, v in matched.items())


@pytest.mark.parametrize(
    ("autoscaling", "live", "want"),
    [
        (None, {"spec": {"replicas": 7}}, 2),  # without autoscaling the spec decides
        ({"minReplicas": 3, "maxReplicas": 9}, {"spec": {"replicas": 7}}, 7),  # the HPA's count
        ({"minReplicas": 3, "maxReplicas": 9}, None, 3),  # no Deployment yet: its minimum
    ],
    ids=["spec", "hpa", "no-deployment"],
)
def test_desired_replicas(make_svc, autoscaling, live, want):
    spec = {"autoscaling": autoscaling} if autoscaling else {"replicas": 2}
    assert desired_replicas(make_svc(type="api", **spec), live) == want


def test_deployment_ready_counts_what_the_hpa_asked_for(make_svc):
    svc = make_svc(type="api", generation=2, autoscaling={"minReplicas": 2, "maxReplicas": 9})
    live = {
        "metadata": {"generation": 4},
        "spec": {"replicas": 5},
        "status": {"observedGeneration": 4, "replicas": 5, "updatedReplicas": 5, "readyReplicas": 5},
    }
    cond, ready = deployment_condition(svc, live)
    assert (cond.status, cond.reason, cond.message, ready) == ("True", "PodsReady", "5/5 pods ready.", 5)
    live["status"]["readyReplicas"] = 4
    cond, _ = deployment_condition(svc, live)
    assert (cond.type, cond.status, cond.reason) == (conditions.DEPLOYMENT_READY, "False", "PodsNotReady")


def _managed(manager, operation, spec_fields):
    return {"manager": manager, "operation": operation, "fieldsV1": {"f:spec": spec_fields}}


@pytest.mark.parametrize(
    ("entries", "owned"),
    [
        ([_managed("platform-operator", "Apply", {"f:replicas": {}, "f:template": {}})], True),
        ([_managed("platform-operator", "Apply", {"f:template": {}})], False),  # given up already
        ([_managed("kube-controller-manager", "Update", {"f:replicas": {}})], False),  # the HPA's
        ([_managed("platform-operator", "Update", {"f:replicas": {}})], False),  # not our apply
        ([], False),
    ],
    ids=["ours", "released", "hpa", "update", "none"],
)
def test_owns_replicas_reads_managed_fields(entries, owned):
    assert owns_replicas({"metadata": {"managedFields": entries}}) is owned
