"""The chart's admin Secrets reach the operator intact (kind: the chart's own operator pods).

hack/kind.sh installs the chart with `redis.existingSecret` naming a Secret whose password holds
every character a URL treats specially. Were the password spliced into a URL, the operator could
not log in to Redis and no service would get its user."""

from __future__ import annotations

import base64
import json

import pytest
from e2e_kube import InClusterOperator, Operator, apply, condition, kubectl, psvc, wait_ready


def _admin_password_secret(operator: InClusterOperator) -> tuple[str, str]:
    """The Secret and key the operator's Deployment takes PLATFORM_REDIS_ADMIN_PASSWORD from."""
    deployment = json.loads(kubectl("get", operator.deployment, "-n", operator.namespace, "-o", "json").stdout)
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"]
    (var,) = [e for e in container["env"] if e["name"] == "PLATFORM_REDIS_ADMIN_PASSWORD"]
    ref = var["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def test_a_redis_admin_password_with_url_characters_logs_the_operator_in(ns: str, operator: Operator):
    if not isinstance(operator, InClusterOperator):
        pytest.skip("the chart's operator pods only run on kind")
    name, key = _admin_password_secret(operator)
    secret = json.loads(kubectl("get", "secret", name, "-n", operator.namespace, "-o", "json").stdout)
    password = base64.b64decode(secret["data"][key]).decode()
    assert set("@/#%") <= set(password), f"hack/kind.sh should install the chart with such a password, not {name}'s"

    apply(psvc("cached", type="worker", image="example/w:1", redis={}), ns)
    obj = wait_ready("cached", ns)
    assert condition(obj, "CacheReady")["reason"] == "Provisioned"
