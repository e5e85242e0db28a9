"""Every type's NetworkPolicy: the pods admit only what their spec calls for, plus the metrics scrape."""

from __future__ import annotations

from typing import Any

import pytest

from platform_operator import builders

SELECTOR = {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": "orders"}
HTTP = [{"port": "http", "protocol": "TCP"}]
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
PLATFORM_PODS = {
    "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "platform",
                                    "app.kubernetes.io/managed-by": "platform-operator"}}
}  # fmt: skip
SCRAPE = {
    "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    "ports": [{"port": "http", "protocol": "TCP"}],
}
OFF = {"metrics": {"enabled": False}}


def rules(svc: Any, cluster: builders.Cluster | None = None) -> list[dict[str, Any]]:
    policy = builders.build_network_policy(svc, cluster)
    assert policy["spec"]["podSelector"] == {"matchLabels": SELECTOR}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["metadata"]["ownerReferences"][0]["kind"] == "PlatformService"
    return list(policy["spec"].get("ingress", []))


@pytest.mark.parametrize("kind", ["worker", "bot-polling"])
def test_workers_and_polling_bots_admit_nothing_but_the_scrape(make_kind, kind):
    assert rules(make_kind(kind)) == [SCRAPE]
    # Metrics off: no rule at all, which admits nothing (and no empty list the API server would drop).
    policy = builders.build_network_policy(make_kind(kind, **OFF))
    assert "ingress" not in policy["spec"]


def test_data_admits_its_dependents_and_never_the_ingress_controller(make_kind):
    got = rules(make_kind("data"))
    assert got == [
        {"from": [{"podSelector": {"matchLabels": {"data.platform.dev/orders": "client"}}}], "ports": HTTP},
        SCRAPE,
    ]
    assert "kubernetes.io/metadata.name" not in str(got[0])


def test_an_api_with_an_ingress_admits_the_controller_and_the_namespaces_services(make_kind):
    got = rules(make_kind("api", ingress={"host": "orders.example.com"}, **OFF))
    assert got == [{"from": [INGRESS_NGINX, PLATFORM_PODS], "ports": HTTP}]


def test_an_api_without_an_ingress_admits_the_namespaces_services_only(make_kind):
    assert rules(make_kind("api", **OFF)) == [{"from": [PLATFORM_PODS], "ports": HTTP}]


def test_a_webhook_bot_admits_the_ingress_controller_only(make_kind):
    assert rules(make_kind("bot-webhook", **OFF)) == [{"from": [INGRESS_NGINX], "ports": HTTP}]


def test_the_ingress_controller_and_the_scrapers_come_from_the_settings(make_kind):
    cluster = builders.Cluster(
        ingress_namespace="ingress-traefik",
        ingress_pod_labels={"app.kubernetes.io/name": "traefik"},
        scraper_namespace_labels={"team": "observability"},
    )
    got = rules(make_kind("bot-webhook"), cluster)
    assert got[0]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-traefik"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
        }
    ]
    assert got[1]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}]


def test_no_scraper_selector_admits_every_namespace_on_the_metrics_port_only(make_kind):
    svc = make_kind("worker", metrics={"port": 9100})
    got = rules(svc, builders.Cluster(scraper_namespace_labels={}))
    assert got == [{"from": [{"namespaceSelector": {}}], "ports": [{"port": "metrics", "protocol": "TCP"}]}]


def _selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return match_labels.items() <= labels.items()


@pytest.mark.parametrize("caller", ["api", "bot-polling", "worker", "data"])
def test_the_namespaces_platform_pods_pass_an_apis_policy_and_pods_of_others_do_not(make_kind, caller):
    admitted = rules(make_kind("api", **OFF))[0]["from"][0]["podSelector"]["matchLabels"]
    pods = builders.build_deployment(make_kind(caller), "d")["spec"]["template"]["metadata"]["labels"]
    assert _selects(admitted, pods)
    # A pod of someone else's Deployment, even one copying a label, does not carry both.
    assert not _selects(admitted, {"app.kubernetes.io/part-of": "platform", "app": "x"})
