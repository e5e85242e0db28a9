"""Runs after the whole suite: the chart's RBAC grants exactly the verbs the operator used.

The API server's audit log of the run records every request the operator made under the chart's
ServiceAccount. A verb it used but was not granted would have failed a test already; this checks
the other way: nothing is granted that the operator never used.
"""

from __future__ import annotations

import json
import os

import pytest
from e2e_kube import kubectl

USER = "system:serviceaccount:platform-system:platform-operator"


def used_verbs(audit_log: str) -> set[tuple[str, str, str]]:
    used = set()
    with open(audit_log) as f:
        for line in f:
            ev = json.loads(line)
            if ev.get("user", {}).get("username") != USER or ev.get("stage") != "ResponseComplete":
                continue
            ref = ev.get("objectRef") or {}
            if not ref.get("resource"):
                continue
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            code = (ev.get("responseStatus") or {}).get("code", 0)
            if code == 403:
                continue  # refused: not a use of a granted verb
            used.add((ref.get("apiGroup", ""), resource, ev["verb"]))
            if ev["verb"] == "patch" and code == 201:
                used.add((ref.get("apiGroup", ""), resource, "create"))  # server-side apply created it
    return used


def granted_verbs(cluster_role: str) -> set[tuple[str, str, str]]:
    role = json.loads(kubectl("get", "clusterrole", cluster_role, "-o", "json").stdout)
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def test_chart_rbac_equals_the_verbs_used(cluster: str, audit_log: str | None):
    if os.environ.get("PLATFORM_E2E_OPERATOR", "chart") != "chart" or not audit_log:
        pytest.skip("needs the operator under the chart's identity and the local control plane's audit log")
    if os.environ.get("PLATFORM_E2E_FULL_RUN") != "1":
        pytest.skip("compares against a whole run of the suite: make test-e2e sets PLATFORM_E2E_FULL_RUN=1")
    used, granted = used_verbs(audit_log), granted_verbs("platform-operator")
    assert used - granted == set(), "used without a grant (should have failed earlier)"
    assert granted - used == set(), "granted but never used by the suite: remove from the chart, or test it"
