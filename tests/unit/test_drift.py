"""Drift detection: what we would apply against what the API server hands back."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from platform_operator import builders
from platform_operator.drift import drifted_paths, holds, parse_quantity

# --- holds: subset semantics ---------------------------------------------------------------------


def test_identical_objects_hold():
    want = {"a": 1, "b": {"c": ["x", {"d": True}]}}
    assert holds(want, copy.deepcopy(want))


def test_extra_live_fields_are_ignored():
    want = {"spec": {"replicas": 2, "template": {"labels": {"app": "x"}}}}
    have = {
        "spec": {"replicas": 2, "revisionHistoryLimit": 10, "template": {"labels": {"app": "x", "pod-hash": "abc"}}},
        "status": {"readyReplicas": 2},
        "metadata": {"resourceVersion": "42"},
    }
    assert holds(want, have)


def test_extra_fields_inside_list_items_are_ignored():
    want = {"ports": [{"name": "http", "port": 80}]}
    have = {"ports": [{"name": "http", "port": 80, "targetPort": 8000, "protocol": "TCP"}]}
    assert holds(want, have)


@pytest.mark.parametrize(
    ("want", "have"),
    [
        ({"a": 1}, {}),
        ({"a": 1}, {"a": 2}),
        ({"a": {"b": "x"}}, {"a": {"b": "y"}}),
        ({"a": {"b": "x"}}, {"a": {"c": "x"}}),
        ({"a": {"b": "x"}}, {"a": "x"}),
        ({"a": ["x"]}, {"a": "x"}),
        ({"a": ["x"]}, {"a": {"0": "x"}}),
        ({"a": True}, {"a": False}),
        ({"a": "true"}, {"a": True}),
        ({"a": "x"}, {"a": None}),
        ({"a": {}}, None),
    ],
    ids=[
        "missing-key",
        "changed-int",
        "nested-change",
        "nested-missing",
        "dict-vs-scalar",
        "list-vs-scalar",
        "list-vs-dict",
        "bool",
        "string-vs-bool",
        "null",
        "live-none",
    ],
)
def test_differences_do_not_hold(want, have):
    assert not holds(want, have)


@pytest.mark.parametrize(
    ("want", "have"),
    [
        ({"c": [{"n": "a"}]}, {"c": [{"n": "a"}, {"n": "sidecar"}]}),
        ({"c": [{"n": "a"}, {"n": "b"}]}, {"c": [{"n": "a"}]}),
        ({"c": []}, {"c": [{"n": "a"}]}),
        ({"c": ["a"]}, {"c": []}),
    ],
    ids=["live-longer", "live-shorter", "want-empty", "live-empty"],
)
def test_list_length_mismatch_is_drift(want, have):
    assert not holds(want, have)


def test_list_order_matters():
    assert not holds({"args": ["--a", "--b"]}, {"args": ["--b", "--a"]})


def test_empty_dict_holds_against_any_dict():
    assert holds({}, {"anything": 1})
    assert holds({"resources": {}}, {"resources": {}})


# --- quantities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("want", "have"),
    [
        ("0.5", "500m"),
        ("500m", "0.5"),
        ("1Gi", "1073741824"),
        ("1073741824", "1Gi"),
        (1, "1"),
        ("1", 1),
        ("1", "1000m"),
        ("64Mi", 67108864),
        ("1.5Gi", "1536Mi"),
        ("1k", "1000"),
        ("2", "2000m"),
        ("100Mi", "104857600"),
        ("0.1", "100m"),
    ],
)
def test_quantities_equal_across_forms(want, have):
    assert holds({"resources": {"limits": {"cpu": want}}}, {"resources": {"limits": {"cpu": have}}})


@pytest.mark.parametrize(
    ("want", "have"),
    [
        ("500m", "0.6"),
        ("1Gi", "1G"),
        ("1m", "1M"),
        ("64Mi", "64M"),
        ("1", "2"),
        (1, "1001m"),
        ("250m", 250),
    ],
)
def test_different_quantities_drift(want, have):
    assert not holds({"cpu": want}, {"cpu": have})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("1Ki", Decimal(1024)),
        ("2Mi", Decimal(2 * 1024 * 1024)),
        ("1G", Decimal(10**9)),
        ("3", Decimal(3)),
        (7, Decimal(7)),
        (" 1Gi ", Decimal(2**30)),
        ("+1", Decimal(1)),
    ],
)
def test_parse_quantity(value, expected):
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["nginx", "", "1Xi", "..", "1.2.3", "http", None, True, False, [], {}])
def test_parse_quantity_rejects_what_is_not_a_quantity(value):
    assert parse_quantity(value) is None


def test_non_quantity_strings_still_compare_exactly():
    assert holds({"image": "app:1"}, {"image": "app:1"})
    assert not holds({"image": "app:1"}, {"image": "app:2"})
    assert not holds({"pathType": "Prefix"}, {"pathType": "prefix"})


# --- drifted_paths -------------------------------------------------------------------------------


def test_no_paths_when_nothing_drifted():
    want = {"a": {"b": 1}, "c": [1, 2]}
    assert drifted_paths(want, {"a": {"b": 1, "x": 0}, "c": [1, 2], "y": 3}) == []


@pytest.mark.parametrize(
    ("want", "have", "paths"),
    [
        ({"spec": {"replicas": 2}}, {"spec": {"replicas": 5}}, ["spec.replicas"]),
        ({"spec": {"replicas": 2}}, {"spec": {}}, ["spec.replicas"]),
        ({"a": {"b": {"c": "x"}}}, {"a": {"b": {"c": "y"}}}, ["a.b.c"]),
        ({"a": [1, 2]}, {"a": [1]}, ["a"]),
        ({"a": 1, "b": 2}, {"a": 9, "b": 9}, ["a", "b"]),
        ({"a": {"b": 1}}, {"a": "scalar"}, ["a"]),
        ("x", "y", ["."]),
    ],
    ids=["changed", "missing", "deep", "list", "two", "type-change", "top-scalar"],
)
def test_drifted_paths_names_the_path(want, have, paths):
    assert drifted_paths(want, have) == paths


def test_drifted_paths_with_label_keys():
    want = {"metadata": {"labels": {"app.kubernetes.io/part-of": "platform"}}}
    have = {"metadata": {"labels": {}}}
    assert drifted_paths(want, have) == ["metadata.labels.app.kubernetes.io/part-of"]


def test_drifted_paths_respect_quantity_equality():
    want = {"resources": {"limits": {"memory": "1Gi"}}}
    assert drifted_paths(want, {"resources": {"limits": {"memory": "1073741824"}}}) == []
    assert drifted_paths(want, {"resources": {"limits": {"memory": "2Gi"}}}) == ["resources.limits.memory"]


# --- against a realistic live Deployment ---------------------------------------------------------


def _as_the_api_server_returns_it(obj: dict[str, Any]) -> dict[str, Any]:
    """Adds what the API server and the controllers put on a Deployment, and canonicalises quantities."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="abc", resourceVersion="123", generation=1, creationTimestamp="2024-01-01T00:00:00Z")
    live["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
    spec = live["spec"]
    spec.update(revisionHistoryLimit=10, progressDeadlineSeconds=600, strategy={"type": "RollingUpdate"})
    pod = spec["template"]["spec"]
    pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", terminationGracePeriodSeconds=30)
    for c in pod["containers"]:
        c.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
        c["livenessProbe"]["successThreshold"] = 1
        c["livenessProbe"]["httpGet"]["scheme"] = "HTTP"
        c["resources"] = {
            "requests": {"cpu": "0.05", "memory": str(64 * 2**20), "ephemeral-storage": "64Mi"},
            "limits": {"memory": "268435456", "ephemeral-storage": str(256 * 2**20)},
        }
    live["status"] = {"replicas": 1, "readyReplicas": 1}
    return live


@pytest.fixture
def built_and_live(make_svc):
    svc = make_svc(type="api", dependsOn=["users"], env=[{"name": "LOG_LEVEL", "value": "info"}])
    want = builders.build_deployment(svc, "0123456789abcdef")
    return want, _as_the_api_server_returns_it(want)


def test_untouched_live_deployment_holds(built_and_live):
    want, live = built_and_live
    assert holds(want, live)
    assert drifted_paths(want, live) == []


def test_hand_scaled_deployment_drifts_at_replicas(built_and_live):
    want, live = built_and_live
    live["spec"]["replicas"] = 7
    assert not holds(want, live)
    assert drifted_paths(want, live) == ["spec.replicas"]


def test_hand_edited_container_drifts_at_the_containers_list(built_and_live):
    want, live = built_and_live
    live["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = False
    assert not holds(want, live)
    assert drifted_paths(want, live) == ["spec.template.spec.containers"]


def test_added_sidecar_is_drift(built_and_live):
    want, live = built_and_live
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    assert drifted_paths(want, live) == ["spec.template.spec.containers"]


def test_removed_label_and_annotation_are_drift(built_and_live):
    want, live = built_and_live
    del live["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    live["spec"]["template"]["metadata"]["annotations"]["platform.dev/config-hash"] = "stale"
    assert sorted(drifted_paths(want, live)) == [
        "metadata.labels.app.kubernetes.io/managed-by",
        "spec.template.metadata.annotations.platform.dev/config-hash",
    ]


@pytest.mark.parametrize(
    ("want", "have"),
    [("3.10", "3.1"), ("007", "7"), ("1k", "1000"), ("10", "10.0")],
    ids=["version", "leading-zero", "suffix", "decimal"],
)
def test_quantity_equality_does_not_leak_into_plain_strings(want, have):
    # Regression (drift._scalar_equal): quantity equality is applied to every scalar of the object, not only
    # to resource quantities. A hand edit of an env value (PYTHON_VERSION 3.10 -> 3.1, ID 007 -> 7) or of
    # an argument counts as "no drift" and is never repaired, although SPEC.md says a child edited by
    # hand comes back within one resync. Only container resources (requests/limits) and other
    # Quantity-typed fields should compare numerically.
    want_obj = {"spec": {"containers": [{"env": [{"name": "V", "value": want}]}]}}
    have_obj = {"spec": {"containers": [{"env": [{"name": "V", "value": have}]}]}}
    assert not holds(want_obj, have_obj)
