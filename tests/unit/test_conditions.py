"""Conditions in the metav1.Condition shape: the summary, transition times and no-op status writes."""

from __future__ import annotations

import re

import pytest

from platform_operator import conditions
from platform_operator.conditions import Condition, find, merge_conditions, now_rfc3339, status_changes, summarize

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:05:00Z"

OK_DEPLOY = Condition.true("DeploymentReady", "PodsReady", "1/1 pods ready.")
OK_QUEUES = Condition.true("QueuesReady", "NotRequired", "No messaging.")
OK_INGRESS = Condition.true("IngressReady", "NotRequired", "No ingress.")
CACHE_NOT_MANAGED = Condition.unknown("CacheReady", "NotManaged", "Not provisioned here.")
DEPLOY_PENDING = Condition.unknown("DeploymentReady", "Pending", "The Deployment is being created.")
DEPLOY_FAILED = Condition.false("DeploymentReady", "ReplicaFailure", "quota exceeded")
INGRESS_CONFLICT = Condition.false("IngressReady", "HostPathConflict", "a.example.com/ is taken")


@pytest.mark.parametrize(
    ("factory", "status"), [(Condition.true, "True"), (Condition.false, "False"), (Condition.unknown, "Unknown")]
)
def test_condition_constructors(factory, status):
    cond = factory("X", "Because", "said so")
    assert (cond.type, cond.status, cond.reason, cond.message) == ("X", status, "Because", "said so")


# --- summarize -----------------------------------------------------------------------------------


def test_all_true_is_all_ready():
    ready = summarize([OK_DEPLOY, OK_QUEUES, OK_INGRESS])
    assert (ready.type, ready.status, ready.reason) == ("Ready", "True", "AllReady")
    assert ready.message


def test_not_managed_unknown_does_not_hold_ready_back():
    ready = summarize([OK_DEPLOY, OK_QUEUES, CACHE_NOT_MANAGED, OK_INGRESS])
    assert (ready.status, ready.reason) == ("True", "AllReady")


@pytest.mark.parametrize(
    ("aspects", "status", "reason", "message"),
    [
        ([OK_DEPLOY, INGRESS_CONFLICT], "False", "HostPathConflict", "IngressReady: a.example.com/ is taken"),
        # False wins over an earlier Unknown.
        ([DEPLOY_PENDING, INGRESS_CONFLICT], "False", "HostPathConflict", "IngressReady: a.example.com/ is taken"),
        # The first False explains.
        ([DEPLOY_FAILED, INGRESS_CONFLICT], "False", "ReplicaFailure", "DeploymentReady: quota exceeded"),
        ([INGRESS_CONFLICT, DEPLOY_FAILED], "False", "HostPathConflict", "IngressReady: a.example.com/ is taken"),
        (
            [DEPLOY_PENDING, CACHE_NOT_MANAGED, OK_INGRESS],
            "Unknown",
            "Pending",
            "DeploymentReady: The Deployment is being created.",
        ),
        # NotManaged is skipped when looking for the reason an Unknown holds Ready back.
        (
            [CACHE_NOT_MANAGED, DEPLOY_PENDING],
            "Unknown",
            "Pending",
            "DeploymentReady: The Deployment is being created.",
        ),
        ([CACHE_NOT_MANAGED, DEPLOY_FAILED], "False", "ReplicaFailure", "DeploymentReady: quota exceeded"),
    ],
)
def test_summary_explains_the_first_problem(aspects, status, reason, message):
    ready = summarize(aspects)
    assert (ready.type, ready.status, ready.reason, ready.message) == ("Ready", status, reason, message)


def test_summary_of_nothing_is_ready():
    assert summarize([]).status == "True"


def test_summarize_accepts_a_one_shot_iterable():
    # Regression (conditions.summarize): it is typed `Iterable[Condition]` but walks `aspects` twice, so a
    # generator is exhausted by the search for False and the search for a pending Unknown sees nothing:
    # an aspect that is Unknown (Pending) yields Ready=True/AllReady. Latent today (desired_status passes
    # a list), wrong for any caller that passes a generator.
    ready = summarize(c for c in [OK_DEPLOY, DEPLOY_PENDING])
    assert ready.status == "Unknown"


# --- merge_conditions ----------------------------------------------------------------------------


def test_first_visit_sets_every_condition_with_now():
    merged = merge_conditions([], [OK_DEPLOY, CACHE_NOT_MANAGED], generation=3, now=T0)
    assert merged == [
        {
            "type": "DeploymentReady",
            "status": "True",
            "reason": "PodsReady",
            "message": "1/1 pods ready.",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        },
        {
            "type": "CacheReady",
            "status": "Unknown",
            "reason": "NotManaged",
            "message": "Not provisioned here.",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        },
    ]


def test_unchanged_status_keeps_the_transition_time_but_updates_the_rest():
    previous = merge_conditions([], [DEPLOY_FAILED], generation=1, now=T0)
    other_failure = Condition.false("DeploymentReady", "ProgressDeadlineExceeded", "stalled")
    merged = merge_conditions(previous, [other_failure], generation=2, now=T1)
    assert merged == [
        {
            "type": "DeploymentReady",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "stalled",
            "lastTransitionTime": T0,
            "observedGeneration": 2,
        }
    ]


@pytest.mark.parametrize(
    ("before", "after"),
    [(DEPLOY_PENDING, OK_DEPLOY), (OK_DEPLOY, DEPLOY_FAILED), (DEPLOY_FAILED, DEPLOY_PENDING)],
    ids=["unknown-to-true", "true-to-false", "false-to-unknown"],
)
def test_status_change_moves_the_transition_time(before, after):
    previous = merge_conditions([], [before], generation=1, now=T0)
    merged = merge_conditions(previous, [after], generation=1, now=T1)
    assert merged[0]["status"] == after.status
    assert merged[0]["lastTransitionTime"] == T1


def test_each_condition_keeps_its_own_time():
    previous = merge_conditions([], [DEPLOY_PENDING, OK_INGRESS], generation=1, now=T0)
    merged = merge_conditions(previous, [OK_DEPLOY, OK_INGRESS], generation=1, now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in merged}
    assert times == {"DeploymentReady": T1, "IngressReady": T0}


def test_previous_without_a_transition_time_gets_now():
    previous = [{"type": "DeploymentReady", "status": "True", "reason": "PodsReady", "message": "m"}]
    assert merge_conditions(previous, [OK_DEPLOY], generation=1, now=T1)[0]["lastTransitionTime"] == T1


def test_order_follows_current_and_stale_types_are_dropped():
    previous = merge_conditions([], [OK_INGRESS, Condition.true("Legacy", "Old", "gone")], generation=1, now=T0)
    merged = merge_conditions(previous, [OK_DEPLOY, OK_INGRESS], generation=1, now=T1)
    assert [c["type"] for c in merged] == ["DeploymentReady", "IngressReady"]


def test_merging_the_same_state_twice_is_equal():
    current = [OK_DEPLOY, CACHE_NOT_MANAGED, INGRESS_CONFLICT]
    first = merge_conditions([], current, generation=4, now=T0)
    assert merge_conditions(first, current, generation=4, now=T1) == first


def test_find():
    conds = merge_conditions([], [OK_DEPLOY, OK_INGRESS], generation=1, now=T0)
    found = find(conds, "IngressReady")
    assert found is not None
    assert found["reason"] == "NotRequired"
    assert find(conds, "QueuesReady") is None


# --- status_changes ------------------------------------------------------------------------------


def test_no_changes_when_equal():
    status = {"observedGeneration": 2, "url": "http://x", "conditions": [{"type": "Ready", "status": "True"}]}
    assert status_changes(status, dict(status)) == {}


@pytest.mark.parametrize(
    ("current", "desired", "changes"),
    [
        ({"url": "a", "replicas": 1}, {"url": "b", "replicas": 1}, {"url": "b"}),
        ({}, {"url": "a"}, {"url": "a"}),
        ({"redis": {"keyPrefix": "a"}}, {"redis": {"keyPrefix": "b"}}, {"redis": {"keyPrefix": "b"}}),
        (
            {"conditions": [{"type": "Ready", "status": "True"}]},
            {"conditions": [{"type": "Ready", "status": "False"}]},
            {"conditions": [{"type": "Ready", "status": "False"}]},
        ),
        ({"readyReplicas": 0}, {"readyReplicas": None}, {"readyReplicas": None}),
    ],
    ids=["scalar", "new-field", "nested", "conditions", "to-null"],
)
def test_only_changed_fields_are_written(current, desired, changes):
    assert status_changes(current, desired) == changes


def test_fields_the_operator_does_not_own_are_left_alone():
    assert status_changes({"url": "a", "queues": [{"name": "q"}]}, {"url": "a"}) == {}


def test_now_is_rfc3339_utc():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", now_rfc3339())


def test_aspect_names_are_the_contract():
    assert conditions.ASPECTS == (
        "DeploymentReady",
        "QueuesReady",
        "CacheReady",
        "IngressReady",
        "DatabaseReady",
        "DependenciesReady",
    )
    assert conditions.READY == "Ready"
