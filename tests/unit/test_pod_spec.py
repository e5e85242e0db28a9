"""spec.pod: what the pods carry, the default spread, the PodDisruptionBudget, and what stays the operator's."""

from __future__ import annotations

from typing import Any

import pytest

from platform_operator import builders
from platform_operator.drift import holds

SELECTOR = {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": "orders"}
EVERY_FIELD: dict[str, Any] = {
    "imagePullSecrets": [{"name": "registry"}],
    "serviceAccountName": "orders-sa",
    "automountServiceAccountToken": True,
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "shop", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "value": ""},
    ],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
            ]
        }
    },
    "topologySpreadConstraints": [
        {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}
    ],
    "annotations": {"team": "shop", "platform.dev/config-hash": "forged"},
    "labels": {"team": "shop", "app.kubernetes.io/name": "someone-else", "data.platform.dev/users": "client"},
    "volumes": [
        {"name": "config", "mountPath": "/etc/orders", "configMap": {"name": "orders-config"}},
        {"name": "certs", "mountPath": "/etc/certs", "secret": {"secretName": "orders-certs", "defaultMode": 0o440}},
        {"name": "scratch", "mountPath": "/scratch", "emptyDir": {"sizeLimit": "128Mi"}},
        {"name": "frozen", "mountPath": "/frozen", "emptyDir": {}, "readOnly": True},
    ],
    "priorityClassName": "business-critical",
}


def pod_template(svc: Any) -> dict[str, Any]:
    return builders.build_deployment(svc, "0123456789abcdef")["spec"]["template"]


def test_every_field_reaches_the_pod_spec(make_kind):
    pod = pod_template(make_kind("api", pod=EVERY_FIELD))["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["serviceAccountName"] == "orders-sa"
    assert pod["automountServiceAccountToken"] is True
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    # An empty value is left out: the API server drops it, and the drift check would see a change.
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "shop", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists"},
    ]
    assert pod["affinity"] == EVERY_FIELD["affinity"]
    assert pod["priorityClassName"] == "business-critical"
    # A constraint without labelSelector counts the service's own pods.
    assert pod["topologySpreadConstraints"] == [
        {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": SELECTOR}}
    ]  # fmt: skip


def test_volumes_are_mounted_configmaps_and_secrets_read_only(make_kind):
    svc = make_kind("api", pod=EVERY_FIELD)
    pod = pod_template(svc)["spec"]
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "config", "configMap": {"name": "orders-config"}},
        {"name": "certs", "secret": {"secretName": "orders-certs", "defaultMode": 0o440}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "128Mi"}},
        {"name": "frozen", "emptyDir": {}},
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "config", "mountPath": "/etc/orders", "readOnly": True},
        {"name": "certs", "mountPath": "/etc/certs", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},  # writable; readOnly false is never written
        {"name": "frozen", "mountPath": "/frozen", "readOnly": True},
    ]


def test_a_volume_named_tmp_never_replaces_the_operators(make_kind):
    pod = pod_template(make_kind("api", pod={"volumes": [{"name": "tmp", "mountPath": "/x", "emptyDir": {}}]}))
    assert pod["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]


def test_the_operators_labels_and_annotations_win(make_kind):
    template = pod_template(make_kind("api", pod=EVERY_FIELD, dependsOn=["users-data"]))
    labels, annotations = template["metadata"]["labels"], template["metadata"]["annotations"]
    assert labels["team"] == "shop"
    assert labels["app.kubernetes.io/name"] == "orders"
    # A pod label cannot open a data service's NetworkPolicy: only dependsOn does.
    assert "data.platform.dev/users" not in labels
    assert labels["data.platform.dev/users-data"] == "client"
    assert annotations == {"team": "shop", "platform.dev/config-hash": "0123456789abcdef"}
    # The selector is the operator's alone.
    deployment = builders.build_deployment(make_kind("api", pod=EVERY_FIELD), "d")
    assert deployment["spec"]["selector"] == {"matchLabels": SELECTOR}


def test_no_pod_settings_add_nothing(make_kind):
    pod = pod_template(make_kind("api"))["spec"]
    for key in ("imagePullSecrets", "serviceAccountName", "nodeSelector", "tolerations", "affinity",
                "topologySpreadConstraints", "priorityClassName"):  # fmt: skip
        assert key not in pod, key  # an empty list or map would be dropped by the API server: a drift each resync
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("spec", "spread"),
    [
        ({"replicas": 1}, False),
        ({"replicas": 0}, False),
        ({"replicas": 2}, True),
        ({"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}, True),
    ],
    ids=["one", "zero", "two", "autoscaling"],
)
def test_more_than_one_pod_spreads_over_nodes_and_gets_a_budget(make_kind, spec, spread):
    svc = make_kind("worker", **spec)
    constraints = pod_template(svc)["spec"].get("topologySpreadConstraints")
    pdb = builders.build_pdb(svc)
    if not spread:
        assert constraints is None and pdb is None
        return
    assert constraints == [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": SELECTOR}}
    ]  # fmt: skip
    assert pdb is not None
    assert (pdb["apiVersion"], pdb["kind"], pdb["metadata"]["name"]) == ("policy/v1", "PodDisruptionBudget", "orders")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}
    assert pdb["metadata"]["ownerReferences"][0]["kind"] == "PlatformService"


def test_the_users_spread_replaces_the_default(make_kind):
    given = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"tier": "web"}}}  # fmt: skip
    pod = pod_template(make_kind("api", replicas=3, pod={"topologySpreadConstraints": [given]}))["spec"]
    assert pod["topologySpreadConstraints"] == [given]


def test_a_live_deployment_as_the_api_server_returns_it_holds(make_kind):
    """What the API server gives back (defaults added, empty values dropped) still holds what we apply:
    a resync with nothing changed writes nothing."""
    svc = make_kind("api", replicas=2, pod=EVERY_FIELD)
    want = builders.build_deployment(svc, "d")
    live = builders.build_deployment(svc, "d")
    pod = live["spec"]["template"]["spec"]
    pod["dnsPolicy"] = "ClusterFirst"
    pod["tolerations"][1]["effect"] = pod["tolerations"][1].get("effect")  # None where absent
    pod["tolerations"][1].pop("effect")
    for v in pod["volumes"]:
        for src in ("configMap", "secret"):
            if src in v:
                v[src].setdefault("defaultMode", 420)
    assert holds(want, live)
