"""DependenciesReady and the paused annotation: the pure decisions."""

from __future__ import annotations

import pytest

from platform_operator import conditions
from platform_operator.claims import service_type_key, type_lookup
from platform_operator.conditions import Condition
from platform_operator.model import is_paused
from platform_operator.status import PAUSED_MESSAGE, dependencies_condition, paused_conditions

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


@pytest.mark.parametrize(
    ("depends_on", "known", "status", "reason", "names"),
    [
        ([], {}, "True", "NotRequired", []),
        (["users"], {"users": "data"}, "True", "Found", ["users"]),
        (["users", "stock"], {"users": "data"}, "False", "DependencyNotFound", ["stock"]),
        (["users"], {"users": "api"}, "False", "DependencyNotData", ["users (type api)"]),
        (["users", "stock"], {"users": "api"}, "False", "DependencyNotFound", ["stock", "users (type api)"]),
    ],
    ids=["none", "found", "missing", "wrong-type", "both"],
)
def test_dependencies_condition(make_svc, depends_on, known, status, reason, names):
    cond = dependencies_condition(make_svc(type="api", dependsOn=depends_on), known.get)
    assert (cond.type, cond.status, cond.reason) == (conditions.DEPENDENCIES_READY, status, reason)
    for name in names:
        assert name in cond.message


def test_a_missing_dependency_makes_ready_false(make_svc):
    deps = dependencies_condition(make_svc(type="api", dependsOn=["users"]), {}.get)
    fine = Condition.true(conditions.DEPLOYMENT_READY, "PodsReady", "1/1 pods ready.")
    ready = conditions.summarize([fine, deps])
    assert (ready.status, ready.reason) == ("False", "DependencyNotFound")


def test_type_lookup_reads_the_index_of_this_namespace_only():
    index = {
        service_type_key("shop", "users"): [("2026-01-01T00:00:00Z", "shop", "data")],
        service_type_key("other", "stock"): [("2026-01-01T00:00:00Z", "other", "data")],
    }
    type_of = type_lookup("shop", lambda key: index.get(key, []))
    assert (type_of("users"), type_of("stock")) == ("data", None)


@pytest.mark.parametrize(
    ("annotations", "paused"),
    [({"platform.dev/paused": "true"}, True), ({"platform.dev/paused": "True"}, True),
     ({"platform.dev/paused": "false"}, False), ({}, False), (None, False)],
)  # fmt: skip
def test_is_paused(annotations, paused):
    assert is_paused(annotations) is paused


def _cond(type_, status, reason, when=T0, generation=1):
    return {"type": type_, "status": status, "reason": reason, "message": "m",
            "lastTransitionTime": when, "observedGeneration": generation}  # fmt: skip


def test_pausing_sets_ready_unknown_paused_and_keeps_the_rest():
    previous = {"conditions": [_cond("Ready", "True", "AllReady"), _cond("DeploymentReady", "True", "PodsReady")]}
    paused = paused_conditions(previous, 2, T1)
    assert paused is not None
    ready = conditions.find(paused, "Ready")
    assert ready == {"type": "Ready", "status": "Unknown", "reason": "Paused", "message": PAUSED_MESSAGE,
                     "lastTransitionTime": T1, "observedGeneration": 2}  # fmt: skip
    assert conditions.find(paused, "DeploymentReady") == previous["conditions"][1]  # as last seen


def test_already_paused_writes_nothing():
    previous = {"conditions": paused_conditions({}, 1, T0)}
    assert paused_conditions(previous, 3, T1) is None
