"""Create, update, drift, delete: what a user sees through kubectl, against the real API server."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from e2e_kube import (
    RESYNC_SECONDS,
    Operator,
    apply,
    condition,
    events,
    eventually,
    get,
    kubectl,
    list_names,
    psvc,
    wait_ready,
    writes_by_operator,
)

from platform_operator import conditions

BOT_SECRET = {"bot": {"mode": "polling", "tokenSecretRef": {"name": "bot-token"}}}

# name, spec, the child kinds the spec must give (besides Deployment and Secret).
CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    (
        "users",
        {"type": "data", "image": "example/users:1", "database": {"engine": "postgres", "secretRef": {"name": "db"}}},
        {"Service", "NetworkPolicy"},
    ),
    (
        "orders",
        {"type": "api", "image": "example/orders:1", "ingress": {"host": "orders.example.com"}},
        {"Service", "Ingress", "NetworkPolicy"},
    ),
    ("notifier", {"type": "worker", "image": "example/notifier:1"}, {"NetworkPolicy"}),
    ("poller", {"type": "bot", "image": "example/bot:1", **BOT_SECRET}, {"NetworkPolicy"}),
    (
        "hook",
        {
            "type": "bot",
            "image": "example/bot:1",
            "bot": {"mode": "webhook", "tokenSecretRef": {"name": "bot-token"}},
            "ingress": {"host": "hook.example.com", "path": "/telegram"},
        },
        {"Service", "Ingress", "NetworkPolicy"},
    ),
]

OPTIONAL = {"Service": "svc", "Ingress": "ingress", "NetworkPolicy": "networkpolicy"}


@pytest.mark.parametrize(("name", "spec", "extra"), CASES, ids=[c[0] for c in CASES])
def test_create_gives_exactly_the_children_and_turns_ready(ns: str, name: str, spec: dict[str, Any], extra: set[str]):
    apply(psvc(name, **spec), ns)
    obj = wait_ready(name, ns)

    deploy = get("deployment", name, ns)
    assert deploy is not None
    assert deploy["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == spec["image"]
    assert deploy["status"]["readyReplicas"] == 1
    secret = get("secret", f"{name}-platform", ns)
    assert secret is not None
    assert base64.b64decode(secret["data"]["SERVICE_TYPE"]).decode() == spec["type"]
    for kind, short in OPTIONAL.items():
        present = get(short, name, ns) is not None
        assert present == (kind in extra), f"{kind} present={present}, expected {kind in extra}"

    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={name}", "-o", "json").stdout)
    assert [p["status"]["phase"] for p in pods["items"]] == ["Running"]

    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["readyReplicas"] == 1
    assert status["replicaSummary"] == "1/1"
    assert status["credentialsSecret"] == f"{name}-platform"
    types = {c["type"]: c for c in status["conditions"]}
    assert set(types) == {conditions.READY, *conditions.ASPECTS}  # the contract's names (test_conditions.py)
    assert all(c["reason"] and c["message"] and c["lastTransitionTime"] for c in types.values())
    assert types["DeploymentReady"]["status"] == "True"
    reasons = {e["reason"] for e in events(ns)}
    assert "Created" in reasons


def test_update_is_followed(ns: str):
    apply(psvc("orders", type="api", image="example/orders:1", ingress={"host": "a.example.com"}), ns)
    first = wait_ready("orders", ns)

    apply(psvc("orders", type="api", image="example/orders:2", replicas=3, ingress={"host": "b.example.com"}), ns)
    second = eventually(
        lambda: (
            (o := get("psvc", "orders", ns))
            and o["status"]["observedGeneration"] > first["status"]["observedGeneration"]
            and condition(o, "Ready").get("status") == "True"
            and o
        ),
        timeout=90,
        what="the update to be observed and Ready",
    )
    assert second["status"]["readyReplicas"] == 3
    assert second["status"]["url"] == "http://b.example.com/"
    deploy = get("deployment", "orders", ns)
    assert deploy is not None
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "example/orders:2"
    ingress = get("ingress", "orders", ns)
    assert ingress is not None
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["b.example.com"]


def test_removing_the_ingress_deletes_it(ns: str):
    apply(psvc("orders", type="api", image="example/orders:1", ingress={"host": "a.example.com"}), ns)
    wait_ready("orders", ns)
    kubectl("patch", "psvc", "orders", "-n", ns, "--type=json", "-p", '[{"op":"remove","path":"/spec/ingress"}]')
    eventually(lambda: get("ingress", "orders", ns) is None, what="the ingress to be deleted")
    obj = wait_ready("orders", ns)
    assert condition(obj, "IngressReady")["reason"] == "NotRequired"


def test_hand_edited_deployment_and_deleted_service_are_repaired(ns: str):
    apply(psvc("orders", type="api", image="example/orders:1"), ns)
    wait_ready("orders", ns)

    kubectl("set", "image", "deployment/orders", "app=evil/image:6", "-n", ns)
    kubectl("delete", "service", "orders", "-n", ns)

    eventually(
        lambda: (
            (d := get("deployment", "orders", ns))
            and d["spec"]["template"]["spec"]["containers"][0]["image"] == "example/orders:1"
        ),
        timeout=RESYNC_SECONDS * 5,
        what="the Deployment's image to be restored",
    )
    svc = eventually(lambda: get("service", "orders", ns), timeout=RESYNC_SECONDS * 5, what="the Service to return")
    assert svc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "platform-operator"
    reasons = {e["reason"] for e in events(ns)}
    assert "Repaired" in reasons


def test_delete_garbage_collects_every_child(ns: str):
    apply(psvc("users", type="data", image="example/users:1"), ns)
    wait_ready("users", ns)
    kubectl("delete", "psvc", "users", "-n", ns, "--wait=true", "--timeout=60s")

    def gone() -> bool:
        left = [
            k
            for k in ("deployment", "service", "networkpolicy", "secret")
            if list_names(k, ns, "app.kubernetes.io/instance=users")
        ]
        return not left

    eventually(gone, timeout=60, what="garbage collection of the children")


def test_resync_with_nothing_changed_writes_nothing(ns: str, operator: Operator, audit_log: str | None):
    apply(psvc("orders", type="api", image="example/orders:1", ingress={"host": "quiet.example.com"}), ns)
    wait_ready("orders", ns)
    time.sleep(RESYNC_SECONDS)  # let the events of the first reconcile settle
    before = {
        k: get(k, "orders", ns)["metadata"]["resourceVersion"] for k in ("psvc", "deployment", "service", "ingress")
    }
    start, log_mark = time.time(), operator.log_mark()

    time.sleep(RESYNC_SECONDS * 4)  # several resyncs

    after = {k: get(k, "orders", ns)["metadata"]["resourceVersion"] for k in before}
    assert after == before
    assert f"Reconciled {ns}/orders: wrote" not in operator.log_since(log_mark)
    if audit_log:  # the local control plane keeps one; a remote cluster may not expose it
        assert writes_by_operator(audit_log, ns, start) == []


def test_switching_a_bot_to_polling_deletes_its_service_and_ingress(ns: str):
    webhook = {"mode": "webhook", "tokenSecretRef": {"name": "bot-token"}}
    apply(psvc("bot", type="bot", image="example/bot:1", bot=webhook, ingress={"host": "bot.example.com"}), ns)
    wait_ready("bot", ns)
    assert get("service", "bot", ns) is not None and get("ingress", "bot", ns) is not None
    ops = [{"op": "remove", "path": "/spec/ingress"}, {"op": "replace", "path": "/spec/bot/mode", "value": "polling"}]
    kubectl("patch", "psvc", "bot", "-n", ns, "--type=json", "-p", json.dumps(ops))
    eventually(lambda: get("service", "bot", ns) is None and get("ingress", "bot", ns) is None, what="both deleted")
    obj = wait_ready("bot", ns)
    assert obj["status"]["url"] == ""
