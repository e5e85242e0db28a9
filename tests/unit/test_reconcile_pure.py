"""The pure parts of a reconcile: the applied-hash stamp, ingress conflicts, and the status users read."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from platform_operator import builders, cache, conditions, messaging, reconcile, status
from platform_operator.backends import Backends
from platform_operator.children import APPLIED_HASH_ANNOTATION, stamp
from platform_operator.claims import ingress_conflict
from platform_operator.conditions import Condition
from platform_operator.credentials import Credentials
from platform_operator.drift import holds
from platform_operator.provision import provision_cache, provision_queues
from platform_operator.state import ReconcileState
from platform_operator.status import (
    Outcome,
    deployment_condition,
    desired_status,
    emit_transitions,
    ingress_condition,
    provisioned_before,
)

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:05:00Z"


# --- stamp ---------------------------------------------------------------------------------------


def _stamped(obj: dict[str, Any]) -> str:
    return stamp(copy.deepcopy(obj))["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]


def test_stamp_adds_a_short_hex_digest(make_svc):
    obj = builders.build_deployment(make_svc(type="api"), "abc")
    stamped = stamp(obj)
    assert stamped is obj
    digest = obj["metadata"]["annotations"]["platform.dev/applied-hash"]
    assert len(digest) == 16
    int(digest, 16)


def test_stamp_is_stable_for_the_same_object(make_svc):
    assert _stamped(builders.build_deployment(make_svc(type="api"), "abc")) == _stamped(
        builders.build_deployment(make_svc(type="api"), "abc")
    )


@pytest.mark.parametrize(
    "change",
    [{"replicas": 2}, {"image": "registry.example/orders:9"}, {"args": ["--x"]}],
    ids=["replicas", "image", "added-args"],
)
def test_stamp_changes_with_the_spec(make_svc, change):
    base = builders.build_deployment(make_svc(type="api"), "abc")
    changed = builders.build_deployment(make_svc(type="api", **change), "abc")
    assert _stamped(base) != _stamped(changed)


def test_stamp_sees_a_removed_field(make_svc):
    # A field-by-field subset check cannot see a removal; the digest can.
    with_args = builders.build_deployment(make_svc(type="api", args=["--x"]), "abc")
    without = builders.build_deployment(make_svc(type="api"), "abc")
    assert holds(without, with_args)
    assert _stamped(with_args) != _stamped(without)


def test_stamp_keeps_existing_annotations(make_svc):
    ing = builders.build_ingress(make_svc(type="api", ingress={"host": "a.example.com", "maxBodySize": "1m"}))
    assert ing is not None
    stamp(ing)
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "1m"
    assert APPLIED_HASH_ANNOTATION in ing["metadata"]["annotations"]


def test_stamped_object_holds_against_its_live_copy(make_svc):
    obj = stamp(builders.build_deployment(make_svc(type="api"), "abc"))
    live = copy.deepcopy(obj)
    live["status"] = {"readyReplicas": 1}
    assert holds(obj, live)
    live["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = "0" * 16
    assert not holds(obj, live)


# --- ingress_conflict ----------------------------------------------------------------------------


class Claims:
    """A stand-in for the kopf index: (host, path) -> [(creationTimestamp, namespace, name)]."""

    def __init__(self, holders: list[tuple[str, str, str]]) -> None:
        self.holders = holders
        self.asked: list[tuple[str, str]] = []

    def __call__(self, key: tuple[str, str]) -> list[tuple[str, str, str]]:
        self.asked.append(key)
        return list(self.holders)


def _api(make_svc, **kw):
    return make_svc(type="api", ingress={"host": "orders.example.com", "path": "/v1"}, **kw)


def test_no_ingress_no_conflict_and_no_lookup(make_svc):
    claims = Claims([("2024-01-01T00:00:00Z", "shop", "other")])
    assert ingress_conflict(make_svc(type="api"), claims) is None
    assert claims.asked == []


def test_the_lookup_uses_host_and_path(make_svc):
    claims = Claims([])
    assert ingress_conflict(_api(make_svc), claims) is None
    assert claims.asked == [("orders.example.com", "/v1")]


@pytest.mark.parametrize(
    ("holders", "conflict"),
    [
        ([("2024-01-01T00:00:00Z", "shop", "orders")], None),
        ([("2024-01-01T00:00:00Z", "shop", "orders"), ("2024-02-01T00:00:00Z", "shop", "late")], None),
        ([("2024-01-01T00:00:00Z", "shop", "early"), ("2024-02-01T00:00:00Z", "shop", "orders")], ("shop", "early")),
        # The index gives no order guarantee: the oldest holder wins whatever the list order.
        ([("2024-02-01T00:00:00Z", "shop", "orders"), ("2024-01-01T00:00:00Z", "team-b", "x")], ("team-b", "x")),
        # The same name in another namespace is another service.
        (
            [("2023-01-01T00:00:00Z", "other", "orders"), ("2024-01-01T00:00:00Z", "shop", "orders")],
            ("other", "orders"),
        ),
        # Created in the same second: a stable, deterministic winner.
        ([("2024-01-01T00:00:00Z", "shop", "orders"), ("2024-01-01T00:00:00Z", "shop", "apple")], ("shop", "apple")),
    ],
    ids=["only-self", "self-older", "other-older", "unordered", "same-name-other-ns", "tie"],
)
def test_the_oldest_claim_wins(make_svc, holders, conflict):
    assert ingress_conflict(_api(make_svc), Claims(holders)) == conflict


# --- deployment_condition ------------------------------------------------------------------------


def _live(generation: int = 2, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": status}


def test_no_deployment_yet_is_pending(make_svc):
    cond, ready = deployment_condition(make_svc(type="api"), None)
    assert (cond.type, cond.status, cond.reason) == ("DeploymentReady", "Unknown", "Pending")
    assert ready == 0


@pytest.mark.parametrize(
    ("replicas", "live", "status", "reason", "message", "ready"),
    [
        (
            2,
            _live(observedGeneration=2, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2),
            "True",
            "PodsReady",
            "2/2 pods ready.",
            2,
        ),
        (
            2,
            _live(observedGeneration=2, replicas=2, updatedReplicas=2, readyReplicas=1),
            "False",
            "PodsNotReady",
            "1/2 pods ready, rollout in progress.",
            1,
        ),
        (
            1,
            _live(generation=3, observedGeneration=2, replicas=1, updatedReplicas=1, readyReplicas=1),
            "False",
            "PodsNotReady",
            "1/1 pods ready, rollout in progress.",
            1,
        ),
        (
            2,
            _live(observedGeneration=2, replicas=2, updatedReplicas=1, readyReplicas=2),
            "False",
            "PodsNotReady",
            "2/2 pods ready, rollout in progress.",
            2,
        ),
        (1, _live(), "False", "PodsNotReady", "0/1 pods ready, rollout in progress.", 0),
        (0, _live(observedGeneration=2), "True", "ScaledToZero", "Scaled to 0 replicas.", 0),
        (
            3,
            _live(
                observedGeneration=2,
                readyReplicas=1,
                conditions=[
                    {"type": "Available", "status": "False"},
                    {"type": "ReplicaFailure", "status": "True", "message": "pods are forbidden: quota"},
                ],
            ),
            "False",
            "ReplicaFailure",
            "pods are forbidden: quota",
            1,
        ),
        (
            3,
            _live(
                observedGeneration=2,
                replicas=4,
                updatedReplicas=1,
                readyReplicas=3,
                conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
            ),
            "False",
            "ProgressDeadlineExceeded",
            "The rollout stalled with 3/3 pods ready; check the pods' events and logs.",
            3,
        ),
        (
            1,
            _live(
                observedGeneration=2,
                replicas=1,
                updatedReplicas=1,
                readyReplicas=1,
                conditions=[{"type": "ReplicaFailure", "status": "False"}, {"type": "Progressing", "status": "True"}],
            ),
            "True",
            "PodsReady",
            "1/1 pods ready.",
            1,
        ),
    ],
    ids=[
        "all-ready",
        "some-ready",
        "generation-not-observed",
        "not-all-updated",
        "empty-status",
        "scaled-to-zero",
        "replica-failure",
        "progress-deadline",
        "resolved-conditions-ignored",
    ],
)
def test_deployment_condition(make_svc, replicas, live, status, reason, message, ready):
    cond, got_ready = deployment_condition(make_svc(type="api", replicas=replicas), live)
    assert (cond.type, cond.status, cond.reason, cond.message) == ("DeploymentReady", status, reason, message)
    assert got_ready == ready


def test_rollout_with_an_old_pod_still_serving_is_not_ready(make_svc):
    # Regression (status.deployment_condition): it never compares status.replicas with updatedReplicas.
    # With 1 replica and the default RollingUpdate (maxSurge 1, maxUnavailable 0), a new image gives:
    # the new pod created (updatedReplicas=1) but not ready, the old pod still ready (readyReplicas=1),
    # status.replicas=2. The function reports DeploymentReady=True/PodsReady (hence Ready=True) for as
    # long as the new pod is broken, until the 600s progress deadline. `kubectl rollout status` treats
    # replicas > updatedReplicas as "old replicas are pending termination", i.e. not done.
    live = _live(observedGeneration=2, replicas=2, updatedReplicas=1, readyReplicas=1, availableReplicas=1)
    cond, _ = deployment_condition(make_svc(type="api", replicas=1), live)
    assert cond.status == "False"


# --- ingress_condition ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "api"},
        {"type": "worker"},
        {"type": "bot", "bot": {"tokenSecretRef": {"name": "tg"}}},
        {"type": "data", "database": {"engine": "postgres", "secretRef": {"name": "db"}}},
    ],
    ids=["api-without-ingress", "worker", "bot-polling", "data"],
)
def test_no_ingress_is_not_required(make_svc, spec):
    cond = ingress_condition(make_svc(**spec), None, None)
    assert (cond.type, cond.status, cond.reason) == ("IngressReady", "True", "NotRequired")


def test_conflict_is_false_and_names_the_holder(make_svc):
    cond = ingress_condition(_api(make_svc), ("shop", "early"), None)
    assert (cond.type, cond.status, cond.reason) == ("IngressReady", "False", "HostPathConflict")
    assert "orders.example.com/v1" in cond.message
    assert "shop/early" in cond.message


@pytest.mark.parametrize(
    ("live", "where"),
    [
        (None, " (no address reported by the ingress controller yet)"),
        ({"status": {}}, " (no address reported by the ingress controller yet)"),
        ({"status": {"loadBalancer": {}}}, " (no address reported by the ingress controller yet)"),
        ({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.7"}]}}}, " at 10.0.0.7"),
        ({"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.net"}]}}}, " at lb.example.net"),
        (
            {"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.7"}, {"ip": "10.0.0.8"}]}}},
            " at 10.0.0.7, 10.0.0.8",
        ),
    ],
    ids=["no-live", "no-status", "no-lb", "ip", "hostname", "two"],
)
def test_configured_ingress_reports_its_address(make_svc, live, where):
    cond = ingress_condition(_api(make_svc), None, live)
    assert (cond.status, cond.reason) == ("True", "Configured")
    assert cond.message == f"Routes orders.example.com/v1{where}."


def test_a_host_of_another_namespace_is_false_and_names_its_owner(make_svc):
    cond = ingress_condition(_api(make_svc), None, None, ("team-b", "gateway"))
    assert (cond.type, cond.status, cond.reason) == ("IngressReady", "False", "HostClaimed")
    assert "orders.example.com" in cond.message
    assert "team-b/gateway" in cond.message


def test_a_claimed_host_is_reported_before_a_path_conflict(make_svc):
    cond = ingress_condition(_api(make_svc), ("shop", "early"), None, ("team-b", "gateway"))
    assert cond.reason == "HostClaimed"


def test_a_host_holder_is_ignored_without_an_ingress(make_svc):
    cond = ingress_condition(make_svc(type="api"), None, None, ("team-b", "gateway"))
    assert (cond.status, cond.reason) == ("True", "NotRequired")


def test_webhook_bot_ingress_is_configured(make_kind):
    cond = ingress_condition(make_kind("bot-webhook"), None, None)
    assert (cond.status, cond.reason) == ("True", "Configured")
    assert "bot.example.com/telegram" in cond.message


# --- outside systems not configured ----------------------------------------------------------------


def outside_conditions(svc):
    """QueuesReady and CacheReady when the operator has no RabbitMQ and no Redis (no I/O happens)."""
    creds = Credentials("rabbit-pass", "redis-pass", "")
    outcome = Outcome(status={})
    queues, _ = asyncio.run(
        provision_queues(svc, messaging.plan(svc), None, creds, True, outcome, lambda *a: None, {}, lambda _: [])
    )
    cache_cond = asyncio.run(provision_cache(cache.plan(svc), None, creds, True, outcome, lambda *a: None))
    assert outcome.written == [] and outcome.retry == []
    return queues, cache_cond


def test_no_messaging_means_queues_not_required(make_svc):
    queues, cache = outside_conditions(make_svc(type="api"))
    assert (queues.type, queues.status, queues.reason) == ("QueuesReady", "True", "NotRequired")
    assert (cache.type, cache.status, cache.reason) == ("CacheReady", "Unknown", "NotManaged")


@pytest.mark.parametrize(
    "messaging",
    [
        {"publishes": [{"name": "orders"}]},
        {"consumes": [{"queue": "notifier.orders", "exchange": "orders"}]},
    ],
    ids=["publishes", "consumes"],
)
def test_declared_messaging_is_reported_as_not_managed(make_svc, messaging):
    queues, _ = outside_conditions(make_svc(type="worker", messaging=messaging))
    assert (queues.type, queues.status, queues.reason) == ("QueuesReady", "Unknown", "NotManaged")


# --- desired_status ------------------------------------------------------------------------------

READY_DEPLOY = Condition.true(conditions.DEPLOYMENT_READY, "PodsReady", "2/2 pods ready.")
PENDING_DEPLOY = Condition.unknown(conditions.DEPLOYMENT_READY, "Pending", "The Deployment is being created.")


def _aspects(svc, deploy=READY_DEPLOY, conflict=None, host_holder=None):
    return [deploy, *outside_conditions(svc), ingress_condition(svc, conflict, None, host_holder)]


def test_desired_status_fields(make_svc):
    svc = make_svc(
        type="api",
        generation=5,
        replicas=2,
        ingress={"host": "orders.example.com", "tls": {"secretName": "t"}},
        redis={"keyPrefix": "orders"},
    )
    deployment = {"spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 1}}
    status = desired_status(svc, {}, _aspects(svc), 1, T0, deployment=deployment)
    conds = status.pop("conditions")
    assert status == {
        "observedGeneration": 5,
        "replicas": 2,  # the Deployment's pods, as the scale subresource reports them
        "readyReplicas": 1,
        "replicaSummary": "1/2",
        "selector": "app.kubernetes.io/name=orders,app.kubernetes.io/instance=orders",
        "url": "https://orders.example.com/",
        "credentialsSecret": "orders-platform",
        "redis": {"keyPrefix": "shop:orders"},  # keyPrefix is relative to the namespace
        "queues": [],
    }
    assert [c["type"] for c in conds] == ["Ready", "DeploymentReady", "QueuesReady", "CacheReady", "IngressReady"]
    assert all(c["observedGeneration"] == 5 and c["lastTransitionTime"] == T0 for c in conds)
    for c in conds:
        assert set(c) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
        assert c["status"] in ("True", "False", "Unknown")
        assert c["reason"][:1].isupper() and " " not in c["reason"], c["reason"]
        assert c["message"], c["type"]


@pytest.mark.parametrize(
    ("spec", "url", "prefix"),
    [
        ({"type": "worker"}, "", "shop:orders"),
        (
            {"type": "data", "database": {"engine": "mongo", "secretRef": {"name": "db"}}},
            "http://orders.shop.svc.cluster.local",
            "shop:orders",
        ),
        ({"type": "bot", "bot": {"tokenSecretRef": {"name": "tg"}}}, "", "shop:orders"),
    ],
    ids=["worker", "data", "bot-polling"],
)
def test_desired_status_url_and_prefix_per_kind(make_svc, spec, url, prefix):
    svc = make_svc(**spec)
    status = desired_status(svc, {}, _aspects(svc), 0, T0)
    assert status["url"] == url
    assert status["redis"] == {"keyPrefix": prefix}
    assert status["replicaSummary"] == "0/1"


@pytest.mark.parametrize(
    ("with_ingress", "aspects", "ready"),
    [
        (False, {}, ("True", "AllReady")),
        (True, {"conflict": ("shop", "early")}, ("False", "HostPathConflict")),
        (True, {"host_holder": ("team-b", "gateway")}, ("False", "HostClaimed")),
    ],
    ids=["everything-ready", "ingress-conflict", "host-of-another-namespace"],
)
def test_ready_is_true_only_when_everything_it_manages_is_ready(make_svc, with_ingress, aspects, ready):
    svc = _api(make_svc) if with_ingress else make_svc(type="api")
    found = conditions.find(desired_status(svc, {}, _aspects(svc, **aspects), 2, T0)["conditions"], "Ready")
    assert found is not None
    assert (found["status"], found["reason"]) == ready


def test_first_visit_sets_every_condition_even_as_unknown(make_svc):
    svc = make_svc(type="api")
    status = desired_status(svc, {}, _aspects(svc, deploy=PENDING_DEPLOY), 0, T0)
    by_type = {c["type"]: c["status"] for c in status["conditions"]}
    assert by_type == {
        "Ready": "Unknown",
        "DeploymentReady": "Unknown",
        "QueuesReady": "True",
        "CacheReady": "Unknown",
        "IngressReady": "True",
    }


def test_a_resync_with_nothing_changed_writes_nothing(make_svc):
    svc = make_svc(type="api", replicas=2)
    first = desired_status(svc, {}, _aspects(svc), 2, T0)
    again = desired_status(svc, first, _aspects(svc), 2, T1)
    assert again == first
    assert conditions.status_changes(first, again) == {}


def test_a_status_flip_moves_only_the_flipped_conditions(make_svc):
    svc = make_svc(type="api", replicas=2)
    first = desired_status(svc, {}, _aspects(svc, deploy=PENDING_DEPLOY), 0, T0)
    second = desired_status(svc, first, _aspects(svc), 2, T1)
    changes = conditions.status_changes(first, second)
    assert set(changes) == {"conditions", "readyReplicas", "replicaSummary"}
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times == {"Ready": T1, "DeploymentReady": T1, "QueuesReady": T0, "CacheReady": T0, "IngressReady": T0}


def test_a_new_generation_is_written(make_svc):
    before = make_svc(type="api", generation=1)
    after = make_svc(type="api", generation=2, replicas=3)
    first = desired_status(before, {}, _aspects(before), 1, T0)
    second = desired_status(after, first, _aspects(after), 1, T1)
    changes = conditions.status_changes(first, second)
    assert changes["observedGeneration"] == 2
    assert changes["replicaSummary"] == "1/3"
    assert all(c["observedGeneration"] == 2 for c in changes["conditions"])
    # Status did not change, so the transition times hold.
    assert all(c["lastTransitionTime"] == T0 for c in changes["conditions"])


def test_status_carries_no_credentials(make_svc):
    svc = make_svc(
        type="data",
        database={"engine": "postgres", "secretRef": {"name": "orders-db", "key": "dsn"}},
        env=[{"name": "API_KEY", "value": "s3cr3t-value"}],
    )
    status = desired_status(svc, {}, _aspects(svc), 1, T0)
    text = repr(status)
    assert "s3cr3t-value" not in text
    assert "orders-db" not in text


# --- what a child-triggered reconcile may skip ------------------------------------------------------


def _status(generation: int, queues: str = "True", cache_: str = "True", digest: str = "d1") -> dict[str, Any]:
    svc_conds = [
        Condition(conditions.QUEUES_READY, queues, "Provisioned", "in place"),
        Condition(conditions.CACHE_READY, cache_, "Provisioned", "in place"),
        Condition(conditions.DATABASE_READY, "True", "NotRequired", "no database"),
    ]
    return {
        "observedGeneration": generation,
        "provisionedDigest": digest,
        "conditions": conditions.merge_conditions([], svc_conds, generation, T0),
    }


def test_provisioned_for_this_digest_is_reused():
    found = provisioned_before(_status(3), "d1")
    assert found is not None
    assert Condition.from_dict(found[conditions.QUEUES_READY]) == Condition(
        conditions.QUEUES_READY, "True", "Provisioned", "in place"
    )


@pytest.mark.parametrize(
    ("status", "digest"),
    [
        ({}, "d1"),
        (_status(3, digest="d0"), "d1"),
        (_status(3, queues="False"), "d1"),
        (_status(3, cache_="Unknown"), "d1"),
        (_status(3, digest=""), ""),
    ],
    ids=["never-reconciled", "other-sections", "queues-not-ready", "cache-not-ready", "no-digest"],
)
def test_outside_systems_are_visited_unless_provisioned_for_this_digest(status, digest):
    assert provisioned_before(status, digest) is None


def _digest(svc: Any, rotation: str = "") -> str:
    creds = Credentials("mq", "redis", rotation)
    return status.provisioning_digest(messaging.plan(svc), cache.plan(svc), creds, None)


def test_the_digest_ignores_what_neither_broker_nor_redis_holds(make_svc):
    base = {"type": "worker", "messaging": {"consumes": [{"queue": "q", "exchange": "orders"}]}}
    one = make_svc(**base, image="registry.example/a:1", replicas=1)
    other = make_svc(**base, image="registry.example/a:2", replicas=3)
    assert _digest(one) == _digest(other)


@pytest.mark.parametrize(
    "change",
    [
        {"messaging": {"consumes": [{"queue": "q", "exchange": "orders", "maxLength": 5}]}},
        {"messaging": {"consumes": [{"queue": "q", "exchange": "orders", "retryDelaySeconds": 30}]}},
        {"messaging": {"consumes": [{"queue": "r", "exchange": "orders"}]}},
        {"redis": {"keys": [{"key": "k", "value": "v"}]}},
    ],
    ids=["max-length", "retry-delay", "queue", "redis-keys"],
)
def test_the_digest_changes_with_the_messaging_or_redis_sections(make_svc, change):
    base = {"type": "worker", "messaging": {"consumes": [{"queue": "q", "exchange": "orders"}]}}
    assert _digest(make_svc(**base)) != _digest(make_svc(**{**base, **change}))


def test_the_digest_changes_with_a_rotation_and_holds_no_password(make_svc):
    svc = make_svc(type="worker")
    assert _digest(svc) != _digest(svc, rotation="r1")
    assert len(_digest(svc)) == 16


def test_own_echo_is_the_version_last_applied():
    state = ReconcileState()
    live = {"kind": "Deployment", "metadata": {"namespace": "shop", "name": "orders", "resourceVersion": "41"}}
    state.remember_write(live)
    assert state.is_own_echo("Deployment", live["metadata"])
    assert not state.is_own_echo("Deployment", {**live["metadata"], "resourceVersion": "42"})  # changed since
    assert not state.is_own_echo("Service", live["metadata"])
    assert not state.is_own_echo("Deployment", {"namespace": "shop", "name": "orders"})
    state.forget("shop", "orders")
    assert not state.is_own_echo("Deployment", live["metadata"])


# --- a child's event that changes nothing a reconcile reads ------------------------------------------


def _deployment(**status_fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "namespace": "shop",
            "name": "orders",
            "generation": 2,
            "resourceVersion": "41",
            "labels": {"app": "orders"},
            "managedFields": [{"manager": "kube-controller-manager", "time": "2026-12-06T05:00:00Z"}],
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "orders:1"}]}}},
        "status": {
            "observedGeneration": 2,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "True", "lastUpdateTime": "2026-12-06T05:00:00Z"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "done"},
            ],
            **status_fields,
        },
    }


def _edited(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    "path,value",
    [
        (("metadata", "resourceVersion"), "42"),
        (("metadata", "managedFields"), []),
        (("status", "availableReplicas"), 0),
        (("status", "unavailableReplicas"), 1),
        (("status", "conditions"), [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]),
    ],
    ids=["version", "managed-fields", "available", "unavailable", "progressing-message"],
)
def test_a_deployment_version_that_changes_nothing_the_status_reads_has_the_same_inputs(make_svc, path, value):
    before, after = _deployment(), _edited(_deployment(), path, value)
    assert status.child_inputs(before) == status.child_inputs(after)
    svc = make_svc(type="worker")
    assert status.deployment_condition(svc, before) == status.deployment_condition(svc, after)


@pytest.mark.parametrize(
    "path,value",
    [
        (("status", "readyReplicas"), 0),
        (("status", "updatedReplicas"), 0),
        (("status", "replicas"), 2),
        (("status", "observedGeneration"), 1),
        (("status", "conditions"), [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]),
        (("status", "conditions"), [{"type": "ReplicaFailure", "status": "True", "message": "quota"}]),
    ],
    ids=["ready", "updated", "total", "observed", "deadline", "replica-failure"],
)
def test_a_deployment_version_that_changes_its_owners_status_has_other_inputs(make_svc, path, value):
    before, after = _deployment(), _edited(_deployment(), path, value)
    assert status.child_inputs(before) != status.child_inputs(after)
    svc = make_svc(type="worker")
    assert status.deployment_condition(svc, before) != status.deployment_condition(svc, after)


@pytest.mark.parametrize(
    "path,value",
    [
        (("spec", "replicas"), 3),
        (("metadata", "labels"), {"app": "orders", "edited": "by-hand"}),
        (("metadata", "annotations"), {"note": "x"}),
        (("metadata", "deletionTimestamp"), "2026-12-06T05:01:00Z"),
    ],
    ids=["spec", "labels", "annotations", "deleting"],
)
def test_an_edit_of_a_childs_spec_or_metadata_changes_its_inputs(path, value):
    assert status.child_inputs(_deployment()) != status.child_inputs(_edited(_deployment(), path, value))


def test_only_an_ingresss_address_counts_of_a_status_and_a_secrets_data_counts():
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}, "spec": {}}
    addressed = {**ingress, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}
    assert status.child_inputs(ingress) != status.child_inputs(addressed)
    pdb = {"kind": "PodDisruptionBudget", "metadata": {"name": "p"}, "spec": {"minAvailable": 1}}
    assert status.child_inputs(pdb) == status.child_inputs({**pdb, "status": {"currentHealthy": 2}})
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "MQ=="}}
    assert status.child_inputs(secret) != status.child_inputs({**secret, "data": {"a": "Mg=="}})


def test_inputs_changed_tells_a_new_reading_from_the_last_one_and_forgets_the_gone():
    state = ReconcileState()
    meta = {"namespace": "shop", "name": "orders"}
    first, second = status.child_inputs(_deployment()), status.child_inputs(_deployment(readyReplicas=0))
    assert state.inputs_changed("Deployment", meta, first)  # never seen
    assert not state.inputs_changed("Deployment", meta, first)
    assert state.inputs_changed("Deployment", meta, second)
    assert state.inputs_changed("Service", meta, None)  # a deletion always counts
    assert not state.inputs_changed("Deployment", meta, second)
    assert state.inputs_changed("Deployment", meta, None)
    assert state.inputs_changed("Deployment", meta, second)  # seen again after it was gone
    state.inputs_changed("Deployment", {"namespace": "shop", "name": "orders-api"}, first)
    state.forget("shop", "orders")
    assert state.inputs_changed("Deployment", meta, second)
    assert not state.inputs_changed("Deployment", {"namespace": "shop", "name": "orders-api"}, first)


# --- one reconcile per object at a time ------------------------------------------------------------


class _GoneKube:
    """Answers every read with "not found" and counts them: a reconcile then stops after one read."""

    def __init__(self) -> None:
        self.reads = 0

    async def read(self, *_: Any, **__: Any) -> None:
        self.reads += 1


def _reconcile(kube: _GoneKube, state: ReconcileState, name: str, **kw: Any):
    return reconcile.reconcile("locks", name, kube, Backends(), state, claims=lambda _: [], emit=lambda *_: None, **kw)  # type: ignore[arg-type]


def test_forget_while_a_reconcile_waits_leaves_no_lock_held():
    async def scenario() -> None:
        kube, state = _GoneKube(), ReconcileState()
        lock = state.lock_for("locks", "a")
        await lock.acquire()
        waiter = asyncio.create_task(_reconcile(kube, state, "a"))
        await asyncio.sleep(0)
        state.forget("locks", "a")  # the delete handler, while the waiter queues
        lock.release()
        assert await waiter is None
        assert kube.reads == 1 and not lock.locked()
        assert await _reconcile(kube, state, "a") is None  # a fresh lock, free
        state.forget("locks", "a")
        assert not state.locks and not state.waiting

    asyncio.run(scenario())


def test_a_child_trigger_behind_a_queued_reconcile_is_coalesced():
    async def scenario() -> None:
        kube, state = _GoneKube(), ReconcileState()
        lock = state.lock_for("locks", "b")
        await lock.acquire()
        queued = asyncio.create_task(_reconcile(kube, state, "b"))
        await asyncio.sleep(0)
        assert await _reconcile(kube, state, "b", external=False) is None
        assert kube.reads == 0  # returned at once: the queued one will read everything afresh
        lock.release()
        await queued
        assert kube.reads == 1
        await _reconcile(kube, state, "b", external=False)  # nothing queued: it runs
        assert kube.reads == 2

    asyncio.run(scenario())


def test_forgetting_a_service_keeps_the_echo_records_of_one_whose_name_starts_with_its_own():
    state = ReconcileState()
    for kind, name in (("Deployment", "orders"), ("Secret", "orders-platform"), ("Deployment", "orders-api"),
                       ("Secret", "orders-api-platform")):  # fmt: skip
        state.remember_write({"kind": kind, "metadata": {"namespace": "shop", "name": name, "resourceVersion": "7"}})
    state.forget("shop", "orders")
    assert not state.is_own_echo("Deployment", {"namespace": "shop", "name": "orders", "resourceVersion": "7"})
    assert not state.is_own_echo("Secret", {"namespace": "shop", "name": "orders-platform", "resourceVersion": "7"})
    assert state.is_own_echo("Deployment", {"namespace": "shop", "name": "orders-api", "resourceVersion": "7"})
    assert state.is_own_echo("Secret", {"namespace": "shop", "name": "orders-api-platform", "resourceVersion": "7"})


def test_two_states_share_nothing():
    one, other = ReconcileState(), ReconcileState()
    one.remember_write(
        {"kind": "Deployment", "metadata": {"namespace": "shop", "name": "orders", "resourceVersion": "7"}}
    )
    assert one.lock_for("shop", "orders") is not other.lock_for("shop", "orders")
    assert not other.is_own_echo("Deployment", {"namespace": "shop", "name": "orders", "resourceVersion": "7"})


def test_a_rollout_under_way_is_no_warning_but_a_stalled_one_and_ready_are_told():
    def said(before: str, after: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        previous = {"conditions": [{"type": "Ready", "status": "True", "reason": "AllReady", "message": "ok"}]}
        status_ = {"conditions": [{"type": "Ready", "status": after, "reason": before, "message": "m"}]}
        emit_transitions(previous, status_, lambda t, r, m: out.append((t, r)))
        return out

    assert said("PodsNotReady", "False") == []
    assert said("ProgressDeadlineExceeded", "False") == [("Warning", "ProgressDeadlineExceeded")]
    assert said("ReplicaFailure", "False") == [("Warning", "ReplicaFailure")]
