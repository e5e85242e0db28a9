"""Every type's NetworkPolicy as the API server keeps it. The local control plane has no CNI that
enforces them: these tests check the objects' shape (unit tests check who their selectors admit)."""

from __future__ import annotations

from typing import Any

from e2e_kube import apply, eventually, get, psvc

HTTP = [{"port": "http", "protocol": "TCP"}]
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
PLATFORM_PODS = {
    "podSelector": {
        "matchLabels": {"app.kubernetes.io/part-of": "platform", "app.kubernetes.io/managed-by": "platform-operator"}
    }
}
SCRAPERS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
BOT = {"tokenSecretRef": {"name": "bot-token"}}


def policy_rules(name: str, ns: str) -> list[dict[str, Any]] | None:
    policy = get("networkpolicy", name, ns)
    if policy is None:
        return None
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
    }
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["metadata"]["ownerReferences"][0]["name"] == name
    return list(policy["spec"].get("ingress") or [])


def test_each_type_admits_only_what_its_spec_calls_for(ns: str):
    apply(psvc("users", type="data", image="example/users:1", database={"engine": "postgres",
                                                                        "secretRef": {"name": "db"}}), ns)  # fmt: skip
    apply(psvc("orders", type="api", image="example/orders:1", ingress={"host": "orders.example.com"}), ns)
    apply(psvc("hook", type="bot", image="example/bot:1", bot={**BOT, "mode": "webhook"},
               ingress={"host": "hook.example.com"}), ns)  # fmt: skip
    apply(psvc("poller", type="bot", image="example/bot:1", bot=BOT, metrics={"enabled": False}), ns)
    apply(psvc("notifier", type="worker", image="example/notifier:1", metrics={"port": 9100}), ns)

    users = eventually(lambda: policy_rules("users", ns), what="users' NetworkPolicy")
    assert users == [
        {"from": [{"podSelector": {"matchLabels": {"data.platform.dev/users": "client"}}}], "ports": HTTP},
        {"from": [SCRAPERS], "ports": HTTP},
    ]
    orders = eventually(lambda: policy_rules("orders", ns), what="orders' NetworkPolicy")
    assert orders == [{"from": [INGRESS_NGINX, PLATFORM_PODS], "ports": HTTP}, {"from": [SCRAPERS], "ports": HTTP}]
    hook = eventually(lambda: policy_rules("hook", ns), what="hook's NetworkPolicy")
    assert hook == [{"from": [INGRESS_NGINX], "ports": HTTP}, {"from": [SCRAPERS], "ports": HTTP}]
    notifier = eventually(lambda: policy_rules("notifier", ns), what="notifier's NetworkPolicy")
    assert notifier == [{"from": [SCRAPERS], "ports": [{"port": "metrics", "protocol": "TCP"}]}]
    # A polling bot with metrics off: a policy with no rule, which admits nothing.
    poller = eventually(lambda: get("networkpolicy", "poller", ns), what="poller's NetworkPolicy")
    assert "ingress" not in poller["spec"] and poller["spec"]["policyTypes"] == ["Ingress"]

    # The api loses its ingress: the controller is no longer admitted; the namespace's services still are.
    apply(psvc("orders", type="api", image="example/orders:1"), ns)
    eventually(
        lambda: (
            policy_rules("orders", ns)
            == [{"from": [PLATFORM_PODS], "ports": HTTP}, {"from": [SCRAPERS], "ports": HTTP}]
        ),
        what="orders' policy without the ingress controller",
    )
