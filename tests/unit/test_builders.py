"""The objects each PlatformService turns into, as a user would find them with kubectl get -o yaml."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from platform_operator import builders

NAME, NAMESPACE, UID = "orders", "shop", "6f1c2b9e-0d4a-4c55-9a0e-1f2d3c4b5a69"
KINDS = ["data", "api", "bot-polling", "bot-webhook", "worker"]
COMPONENT = {"data": "data", "api": "api", "bot-polling": "bot", "bot-webhook": "bot", "worker": "worker"}


def children(svc: Any) -> list[dict[str, Any]]:
    """Every object the operator would apply for svc (the optional ones only when built)."""
    settings = builders.secret_settings(svc)
    built = [
        builders.build_secret(svc, settings),
        builders.build_deployment(svc, builders.config_hash(settings)),
        builders.build_service(svc),
        builders.build_ingress(svc),
        builders.build_network_policy(svc),
    ]
    return [obj for obj in built if obj is not None]


def deployment(svc: Any, digest: str = "0123456789abcdef") -> dict[str, Any]:
    return builders.build_deployment(svc, digest)


def app_container(svc: Any) -> dict[str, Any]:
    containers = deployment(svc)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one process per pod: exactly one container"
    return containers[0]


def env_by_name(svc: Any) -> dict[str, dict[str, Any]]:
    env = app_container(svc).get("env", [])
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e for e in env}


def secret_ref(name: str, key: str | None) -> dict[str, str]:
    """A secretRef as a spec gives it: without `key` when None (the builder's default applies)."""
    return {"name": name} if key is None else {"name": name, "key": key}


def from_secret(var: str, secret: str, key: str) -> dict[str, Any]:
    """The env entry that reads `var` from a Secret's key: the value itself never in the Deployment."""
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v, validate=True).decode() for k, v in secret["data"].items()}


# --- which children exist ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("data", {"Secret", "Deployment", "Service", "NetworkPolicy"}),
        ("api", {"Secret", "Deployment", "Service", "NetworkPolicy"}),
        ("bot-polling", {"Secret", "Deployment", "NetworkPolicy"}),
        ("bot-webhook", {"Secret", "Deployment", "Service", "Ingress", "NetworkPolicy"}),
        ("worker", {"Secret", "Deployment", "NetworkPolicy"}),
    ],
)
def test_each_kind_gets_exactly_its_children(make_kind, kind, expected):
    assert sorted(obj["kind"] for obj in children(make_kind(kind))) == sorted(expected)


def test_api_with_ingress_gets_an_ingress(make_kind):
    svc = make_kind("api", ingress={"host": "orders.example.com"})
    assert {obj["kind"] for obj in children(svc)} == {"Secret", "Deployment", "Service", "Ingress", "NetworkPolicy"}


@pytest.mark.parametrize(
    ("kind", "url"),
    [("data", "http://orders.shop.svc.cluster.local"), ("worker", ""), ("bot-polling", "")],
)
def test_no_ingress_for_data_worker_or_polling_bot_even_if_the_block_is_present(make_kind, kind, url):
    # The CRD's CEL rules reject this; the builders must not rely on that alone.
    svc = make_kind(kind, ingress={"host": "sneaky.example.com"})
    assert builders.build_ingress(svc) is None
    assert builders.ingress_claim(svc) is None
    assert builders.service_url(svc) == url


@pytest.mark.parametrize(
    ("kind", "has_service"),
    [("data", True), ("api", True), ("bot-polling", False), ("bot-webhook", True), ("worker", False)],
)
def test_service_only_for_data_api_and_webhook_bots(make_kind, kind, has_service):
    assert (builders.build_service(make_kind(kind)) is not None) is has_service


@pytest.mark.parametrize("kind", KINDS)
def test_every_type_has_a_network_policy(make_kind, kind):
    assert builders.build_network_policy(make_kind(kind))["kind"] == "NetworkPolicy"


# --- metadata every child carries ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_child_carries_the_standard_labels(make_kind, kind):
    for obj in children(make_kind(kind)):
        assert obj["metadata"]["labels"] == {
            "app.kubernetes.io/name": NAME,
            "app.kubernetes.io/instance": NAME,
            "app.kubernetes.io/component": COMPONENT[kind],
            "app.kubernetes.io/part-of": "platform",
            "app.kubernetes.io/managed-by": "platform-operator",
        }, obj["kind"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_child_is_controlled_by_its_platform_service(make_kind, kind):
    for obj in children(make_kind(kind)):
        assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "platform.dev/v1alpha1",
                "kind": "PlatformService",
                "name": NAME,
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], obj["kind"]


def test_owner_reference_follows_the_objects_own_uid(make_svc):
    svc = make_svc(type="api", name="billing", uid="another-uid")
    assert builders.owner_reference(svc)["uid"] == "another-uid"
    assert builders.owner_reference(svc)["name"] == "billing"


@pytest.mark.parametrize("kind", KINDS)
def test_children_are_named_after_the_service(make_kind, kind):
    names = {obj["kind"]: obj["metadata"]["name"] for obj in children(make_kind(kind))}
    assert names.pop("Secret") == "orders-platform"
    assert set(names.values()) == {NAME}


def test_children_do_not_share_mutable_metadata(make_kind):
    # stamp() writes into metadata.annotations; one child's metadata must not leak into another's.
    objs = children(make_kind("bot-webhook"))
    objs[0]["metadata"]["labels"]["x"] = "y"
    assert all("x" not in obj["metadata"]["labels"] for obj in objs[1:])


# --- Deployment ----------------------------------------------------------------------------------


def test_deployment_defaults(make_svc):
    svc = make_svc(type="api")
    dep = deployment(svc)
    assert dep["apiVersion"] == "apps/v1"
    assert dep["spec"]["replicas"] == 1
    c = app_container(svc)
    assert c["name"] == "app"
    assert c["image"] == "registry.example/orders:1.4.2"
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
        "limits": {"memory": "256Mi", "ephemeral-storage": "256Mi"},
    }
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    for key in ("command", "args", "env"):
        assert key not in c, key


def test_default_resources_are_a_copy(make_svc):
    # Two services must not share (and mutate) the module-level default dicts.
    c = app_container(make_svc(type="api"))
    c["resources"]["requests"]["cpu"] = "9"
    assert builders.DEFAULT_RESOURCES["requests"]["cpu"] == "50m"
    assert app_container(make_svc(type="api"))["resources"]["requests"]["cpu"] == "50m"


def test_replicas_port_and_health_paths_from_spec(make_svc):
    svc = make_svc(type="api", replicas=3, port=9090, health={"livenessPath": "/livez", "readinessPath": "/readyz"})
    assert deployment(svc)["spec"]["replicas"] == 3
    c = app_container(svc)
    assert c["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["startupProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_only_one_health_path_given_keeps_the_other_default(make_svc):
    c = app_container(make_svc(type="worker", health={"readinessPath": "/ok"}))
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ok"


def test_zero_replicas_is_kept(make_svc):
    assert deployment(make_svc(type="api", replicas=0))["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "512Mi"}},
            {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        ),
        ({"limits": {"memory": 1073741824}}, {"limits": {"memory": "1073741824"}}),
        ({"requests": {"cpu": "100m"}}, {"requests": {"cpu": "100m"}}),
    ],
    ids=["both", "limits-int", "requests-only"],
)
def test_resources_from_spec_replace_the_defaults(make_svc, resources, expected):
    assert app_container(make_svc(type="api", resources=resources))["resources"] == expected


def test_command_and_args(make_svc):
    c = app_container(make_svc(type="worker", command=["python", "-m", "notifier"], args=["--queue", "orders"]))
    assert c["command"] == ["python", "-m", "notifier"]
    assert c["args"] == ["--queue", "orders"]


@pytest.mark.parametrize("kind", KINDS)
def test_pod_meets_the_restricted_pod_security_profile(make_kind, kind):
    svc = make_kind(kind)
    pod = deployment(svc)["spec"]["template"]["spec"]
    c = app_container(svc)
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    # A read-only root filesystem still needs somewhere to write temporary files.
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


@pytest.mark.parametrize("kind", KINDS)
def test_pod_loads_the_platform_secret(make_kind, kind):
    assert app_container(make_kind(kind))["envFrom"] == [{"secretRef": {"name": "orders-platform"}}]


def test_platform_secret_name_follows_the_service_name(make_svc):
    svc = make_svc(type="api", name="billing")
    assert app_container(svc)["envFrom"] == [{"secretRef": {"name": "billing-platform"}}]
    assert builders.build_secret(svc, builders.secret_settings(svc))["metadata"]["name"] == "billing-platform"


def test_config_hash_is_on_the_pod_template(make_svc):
    dep = deployment(make_svc(type="api"), "feedc0ffee123456")
    assert dep["spec"]["template"]["metadata"]["annotations"] == {"platform.dev/config-hash": "feedc0ffee123456"}


@pytest.mark.parametrize("kind", KINDS)
def test_selector_matches_pods_and_is_the_stable_pair(make_kind, kind):
    dep = deployment(make_kind(kind, dependsOn=["users"]))
    selector = dep["spec"]["selector"]["matchLabels"]
    # Deployment selectors are immutable: only name and instance, never labels that follow the spec.
    assert selector == {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": NAME}
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()


# --- env -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dep", "var"),
    [("users", "DATA_USERS_URL"), ("user-profiles", "DATA_USER_PROFILES_URL"), ("a-b-c2", "DATA_A_B_C2_URL")],
)
def test_depends_on_injects_the_data_service_url(make_svc, dep, var):
    env = env_by_name(make_svc(type="api", dependsOn=[dep]))
    assert env[var] == {"name": var, "value": f"http://{dep}.shop.svc.cluster.local"}


def test_depends_on_several_and_labels_the_pods_as_clients(make_svc):
    svc = make_svc(type="worker", dependsOn=["users", "catalog-items"])
    env = env_by_name(svc)
    assert env["DATA_USERS_URL"]["value"] == "http://users.shop.svc.cluster.local"
    assert env["DATA_CATALOG_ITEMS_URL"]["value"] == "http://catalog-items.shop.svc.cluster.local"
    dep = deployment(svc)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["data.platform.dev/users"] == "client"
    assert pod_labels["data.platform.dev/catalog-items"] == "client"
    # The client labels are for the pods the NetworkPolicy selects, not for the Deployment object.
    assert not any(k.startswith("data.platform.dev/") for k in dep["metadata"]["labels"])


def test_depends_on_uses_the_services_own_namespace(make_svc):
    env = env_by_name(make_svc(type="api", namespace="staging", dependsOn=["users"]))
    assert env["DATA_USERS_URL"]["value"] == "http://users.staging.svc.cluster.local"


def test_no_client_labels_without_depends_on(make_svc):
    labels = deployment(make_svc(type="api"))["spec"]["template"]["metadata"]["labels"]
    assert not any(k.startswith("data.platform.dev/") for k in labels)


@pytest.mark.parametrize(("engine", "key", "expected_key"), [("postgres", None, "dsn"), ("mongo", "uri", "uri")])
def test_data_service_gets_database_url_from_its_secret(make_svc, engine, key, expected_key):
    env = env_by_name(make_svc(type="data", database={"engine": engine, "secretRef": secret_ref("orders-db", key)}))
    assert env["DATABASE_URL"] == from_secret("DATABASE_URL", "orders-db", expected_key)
    assert env["DATABASE_ENGINE"] == {"name": "DATABASE_ENGINE", "value": engine}
    assert "value" not in env["DATABASE_URL"], "the DSN must never be inlined into the Deployment"


@pytest.mark.parametrize("kind", ["api", "bot-polling", "bot-webhook", "worker"])
def test_only_data_services_get_database_settings(make_kind, kind):
    env = env_by_name(make_kind(kind, dependsOn=["users"]))
    assert "DATABASE_URL" not in env
    assert "DATABASE_ENGINE" not in env


@pytest.mark.parametrize(("mode", "key"), [("polling", None), ("webhook", "bot-token")])
def test_bot_gets_token_and_mode(make_svc, mode, key):
    env = env_by_name(make_svc(type="bot", bot={"mode": mode, "tokenSecretRef": secret_ref("tg", key)}))
    assert env["BOT_TOKEN"] == from_secret("BOT_TOKEN", "tg", key or "token")
    assert env["BOT_MODE"] == {"name": "BOT_MODE", "value": mode}


def test_bot_mode_defaults_to_polling(make_svc):
    svc = make_svc(type="bot", bot={"tokenSecretRef": {"name": "tg"}})
    assert env_by_name(svc)["BOT_MODE"]["value"] == "polling"
    assert builders.build_service(svc) is None


@pytest.mark.parametrize(
    ("ingress", "url"),
    [
        ({"host": "bot.example.com", "path": "/telegram"}, "http://bot.example.com/telegram"),
        ({"host": "bot.example.com", "tls": {"secretName": "bot-tls"}}, "https://bot.example.com/"),
    ],
)
def test_webhook_bot_is_told_its_public_url(make_svc, ingress, url):
    svc = make_svc(type="bot", bot={"mode": "webhook", "tokenSecretRef": {"name": "tg"}}, ingress=ingress)
    assert env_by_name(svc)["BOT_WEBHOOK_URL"] == {"name": "BOT_WEBHOOK_URL", "value": url}


@pytest.mark.parametrize("kind", ["data", "api", "bot-polling", "worker"])
def test_no_webhook_url_without_a_webhook(make_kind, kind):
    assert "BOT_WEBHOOK_URL" not in env_by_name(make_kind(kind))


@pytest.mark.parametrize("kind", ["data", "api", "worker"])
def test_only_bots_get_bot_settings(make_kind, kind):
    env = env_by_name(make_kind(kind))
    assert "BOT_TOKEN" not in env
    assert "BOT_MODE" not in env


def test_user_env_is_passed_through_after_the_platforms(make_svc):
    user_env = [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    env = app_container(make_svc(type="api", dependsOn=["users"], env=user_env))["env"]
    assert env == [{"name": "DATA_USERS_URL", "value": "http://users.shop.svc.cluster.local"}, *user_env]


@pytest.mark.parametrize(
    ("kind", "name", "platform_value"),
    [
        ("data", "DATABASE_URL", {"valueFrom": {"secretKeyRef": {"name": "orders-db", "key": "dsn"}}}),
        ("data", "DATABASE_ENGINE", {"value": "postgres"}),
        ("bot-polling", "BOT_TOKEN", {"valueFrom": {"secretKeyRef": {"name": "tg-token", "key": "token"}}}),
        ("bot-webhook", "BOT_WEBHOOK_URL", {"value": "http://bot.example.com/telegram"}),
        ("api", "DATA_USERS_URL", {"value": "http://users.shop.svc.cluster.local"}),
    ],
)
def test_user_env_cannot_override_a_platform_variable(make_kind, kind, name, platform_value):
    svc = make_kind(kind, dependsOn=["users"], env=[{"name": name, "value": "postgres://evil@elsewhere/db"}])
    env = app_container(svc)["env"]
    matching = [e for e in env if e["name"] == name]
    assert matching == [{"name": name, **platform_value}]


@pytest.mark.parametrize("kind", ["api", "bot-polling", "worker"])
def test_user_env_cannot_smuggle_database_url_into_a_non_data_service(make_kind, kind):
    # Regression (builders._env): user variables are filtered only against the names the platform itself set
    # for this service, so on a non-data service (which gets no DATABASE_URL) a user-supplied
    # DATABASE_URL passes straight through. The code's own comment and SPEC.md ("No other type may
    # receive database credentials") say it must not.
    svc = make_kind(
        kind,
        env=[{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "orders-db", "key": "dsn"}}}],
    )
    assert "DATABASE_URL" not in env_by_name(svc)


# --- Service -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["data", "api", "bot-webhook"])
def test_service_routes_port_80_to_the_http_port(make_kind, kind):
    svc = make_kind(kind, port=9000)
    service = builders.build_service(svc)
    assert service is not None
    assert service["apiVersion"] == "v1"
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": NAME},
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    # targetPort is the container port's name, so a custom port needs no change here.
    assert app_container(svc)["ports"][0] == {"name": "http", "containerPort": 9000, "protocol": "TCP"}
    pod_labels = deployment(svc)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


# --- Ingress -------------------------------------------------------------------------------------


def test_ingress_minimal(make_svc):
    ing = builders.build_ingress(make_svc(type="api", ingress={"host": "orders.example.com"}))
    assert ing is not None
    assert ing["apiVersion"] == "networking.k8s.io/v1"
    assert "annotations" not in ing["metadata"]
    assert ing["spec"] == {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "orders.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": NAME, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }


def test_ingress_for_webhook_bot_routes_its_path(make_kind):
    ing = builders.build_ingress(make_kind("bot-webhook"))
    assert ing is not None
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "bot.example.com"
    assert rule["http"]["paths"][0]["path"] == "/telegram"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == NAME


def test_ingress_without_block_is_none(make_svc):
    assert builders.build_ingress(make_svc(type="api")) is None
    assert builders.ingress_claim(make_svc(type="api")) is None


def test_webhook_bot_without_ingress_block_has_a_service_but_no_ingress(make_svc):
    svc = make_svc(type="bot", bot={"mode": "webhook", "tokenSecretRef": {"name": "tg"}})
    assert builders.build_service(svc) is not None
    assert builders.build_ingress(svc) is None


def test_ingress_tls(make_svc):
    ing = builders.build_ingress(
        make_svc(type="api", ingress={"host": "orders.example.com", "tls": {"secretName": "orders-tls"}})
    )
    assert ing is not None
    assert ing["spec"]["tls"] == [{"hosts": ["orders.example.com"], "secretName": "orders-tls"}]
    assert ing["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
        "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
    }


def test_no_tls_no_redirect(make_svc):
    ing = builders.build_ingress(make_svc(type="api", ingress={"host": "orders.example.com", "maxBodySize": "1m"}))
    assert ing is not None
    assert "tls" not in ing["spec"]
    assert not any("ssl-redirect" in k for k in ing["metadata"]["annotations"])


@pytest.mark.parametrize(
    ("rate_limit", "rps", "multiplier"),
    [
        ({"rps": 10}, "10", "5"),  # default burst is 5 * rps
        ({"rps": 10, "burst": 25}, "10", "3"),  # ceil(2.5)
        ({"rps": 10, "burst": 10}, "10", "1"),
        ({"rps": 3, "burst": 10}, "3", "4"),  # ceil(3.33)
        ({"rps": 7, "burst": 70}, "7", "10"),
        ({"rps": 1}, "1", "5"),
    ],
)
def test_rate_limit_annotations(make_svc, rate_limit, rps, multiplier):
    svc = make_svc(type="api", ingress={"host": "orders.example.com", "rateLimit": rate_limit})
    assert builders.ingress_annotations(svc) == {
        "nginx.ingress.kubernetes.io/limit-rps": rps,
        "nginx.ingress.kubernetes.io/limit-burst-multiplier": multiplier,
    }


@pytest.mark.parametrize(
    ("origins", "header"),
    [
        (["https://app.example.com"], "https://app.example.com"),
        (
            ["https://app.example.com", "https://admin.example.com"],
            "https://app.example.com, https://admin.example.com",
        ),
        (["*"], "*"),
    ],
)
def test_cors_annotations(make_svc, origins, header):
    svc = make_svc(type="api", ingress={"host": "orders.example.com", "cors": {"allowOrigins": origins}})
    assert builders.ingress_annotations(svc) == {
        "nginx.ingress.kubernetes.io/enable-cors": "true",
        "nginx.ingress.kubernetes.io/cors-allow-origin": header,
    }


@pytest.mark.parametrize("size", ["1m", "512k", "10"])
def test_max_body_size_annotation(make_svc, size):
    svc = make_svc(type="api", ingress={"host": "orders.example.com", "maxBodySize": size})
    assert builders.ingress_annotations(svc) == {"nginx.ingress.kubernetes.io/proxy-body-size": size}


def test_all_ingress_options_together(make_svc):
    svc = make_svc(
        type="api",
        ingress={
            "host": "orders.example.com",
            "path": "/v1",
            "tls": {"secretName": "orders-tls"},
            "rateLimit": {"rps": 20, "burst": 50},
            "cors": {"allowOrigins": ["https://app.example.com"]},
            "maxBodySize": "8m",
        },
    )
    ing = builders.build_ingress(svc)
    assert ing is not None
    assert ing["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/limit-rps": "20",
        "nginx.ingress.kubernetes.io/limit-burst-multiplier": "3",
        "nginx.ingress.kubernetes.io/enable-cors": "true",
        "nginx.ingress.kubernetes.io/cors-allow-origin": "https://app.example.com",
        "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
        "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
    }
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/v1"
    assert ing["spec"]["tls"] == [{"hosts": ["orders.example.com"], "secretName": "orders-tls"}]
    # Annotations are extra; the standard labels and owner are still there.
    assert ing["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "platform-operator"
    assert ing["metadata"]["ownerReferences"][0]["uid"] == UID


@pytest.mark.parametrize(
    ("kind", "ingress", "claim"),
    [
        ("api", {"host": "orders.example.com"}, ("orders.example.com", "/")),
        ("api", {"host": "orders.example.com", "path": "/v2"}, ("orders.example.com", "/v2")),
        ("bot-webhook", {"host": "bot.example.com", "path": "/tg"}, ("bot.example.com", "/tg")),
    ],
)
def test_ingress_claim_is_host_and_path(make_kind, kind, ingress, claim):
    assert builders.ingress_claim(make_kind(kind, ingress=ingress)) == claim


# --- NetworkPolicy -------------------------------------------------------------------------------


def test_network_policy_admits_only_declared_clients(make_kind):
    policy = builders.build_network_policy(make_kind("data", metrics={"enabled": False}))
    assert policy is not None
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": NAME}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [{"podSelector": {"matchLabels": {"data.platform.dev/orders": "client"}}}],
                "ports": [{"port": "http", "protocol": "TCP"}],
            }
        ],
    }


def _selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return match_labels.items() <= labels.items()


@pytest.mark.parametrize("client_kind", ["api", "bot-polling", "bot-webhook", "worker", "data"])
def test_dependents_pods_pass_the_data_services_policy_and_others_do_not(make_svc, make_kind, client_kind):
    users = make_svc(type="data", name="users", database={"engine": "mongo", "secretRef": {"name": "u-db"}})
    policy = builders.build_network_policy(users)
    assert policy is not None
    admitted = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    protected = policy["spec"]["podSelector"]["matchLabels"]

    users_pods = deployment(users)["spec"]["template"]["metadata"]["labels"]
    dependent_pods = deployment(make_kind(client_kind, dependsOn=["users"]))["spec"]["template"]["metadata"]["labels"]
    stranger_pods = deployment(make_kind(client_kind, dependsOn=["billing"]))["spec"]["template"]["metadata"]["labels"]

    assert _selects(protected, users_pods)
    assert not _selects(protected, dependent_pods)
    assert _selects(admitted, dependent_pods)
    assert not _selects(admitted, stranger_pods)
    assert not _selects(admitted, users_pods)


# --- Secret and settings -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_secret_holds_the_settings_base64(make_kind, kind):
    svc = make_kind(kind)
    settings = builders.secret_settings(svc)
    secret = builders.build_secret(svc, settings)
    assert secret["apiVersion"] == "v1"
    assert secret["kind"] == "Secret"
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert decoded(secret) == settings
    assert decoded(secret)["SERVICE_TYPE"] == COMPONENT[kind]


def test_settings_defaults(make_svc):
    assert builders.secret_settings(make_svc(type="api")) == {
        "SERVICE_NAME": "orders",
        "SERVICE_TYPE": "api",
        "SERVICE_NAMESPACE": "shop",
        "REDIS_KEY_PREFIX": "shop:orders",
        "IDEMPOTENCY_TTL_SECONDS": "86400",
        "REQUEST_ID_HEADER": "X-Request-ID",
        "OTEL_SERVICE_NAME": "orders",
        "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,platform.service.type=api",
    }


def test_settings_follow_the_redis_block(make_svc):
    settings = builders.secret_settings(
        make_svc(type="worker", redis={"keyPrefix": "notify", "idempotencyTTLSeconds": 600})
    )
    # keyPrefix is relative to the namespace: no spec can name a prefix above its namespace's.
    assert settings["REDIS_KEY_PREFIX"] == "shop:notify"
    assert settings["IDEMPOTENCY_TTL_SECONDS"] == "600"


def test_redis_block_without_prefix_defaults_to_namespace_and_name(make_svc):
    svc = make_svc(type="worker", name="mailer", namespace="ops", redis={"idempotencyTTLSeconds": 60})
    assert builders.secret_settings(svc)["REDIS_KEY_PREFIX"] == "ops:mailer"
    assert builders.secret_settings(svc)["IDEMPOTENCY_TTL_SECONDS"] == "60"


def test_otel_endpoint_only_when_configured(make_svc):
    svc = make_svc(type="api")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in builders.secret_settings(svc)
    with_otel = builders.secret_settings(svc, "http://otel-collector.observability:4317")
    assert with_otel["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
    assert decoded(builders.build_secret(svc, with_otel))["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        "http://otel-collector.observability:4317"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_secret_and_env_never_inline_credentials(make_kind, kind):
    # DSNs and bot tokens are referenced, never copied into the Deployment or the platform Secret.
    svc = make_kind(kind)
    settings = builders.secret_settings(svc)
    assert not {"DATABASE_URL", "BOT_TOKEN"} & settings.keys()
    for e in app_container(svc).get("env", []):
        if e["name"] in ("DATABASE_URL", "BOT_TOKEN"):
            assert set(e) == {"name", "valueFrom"}


# --- config hash ---------------------------------------------------------------------------------


def test_config_hash_is_stable_and_order_independent():
    a = {"SERVICE_NAME": "orders", "SERVICE_TYPE": "api"}
    b = {"SERVICE_TYPE": "api", "SERVICE_NAME": "orders"}
    assert builders.config_hash(a) == builders.config_hash(dict(a)) == builders.config_hash(b)
    assert len(builders.config_hash(a)) == 16
    int(builders.config_hash(a), 16)  # hex


@pytest.mark.parametrize(
    "change",
    [
        {"redis": {"keyPrefix": "other"}},
        {"redis": {"idempotencyTTLSeconds": 60}},
        {"name": "billing"},
        {"namespace": "staging"},
    ],
    ids=["key-prefix", "idempotency-ttl", "name", "namespace"],
)
def test_config_hash_changes_when_settings_change_so_pods_roll(make_svc, change):
    before = make_svc(type="api")
    after = make_svc(type="api", **change)

    def digest(svc: Any) -> str:
        return deployment(svc, builders.config_hash(builders.secret_settings(svc)))["spec"]["template"]["metadata"][
            "annotations"
        ]["platform.dev/config-hash"]

    assert digest(before) != digest(after)


def test_config_hash_changes_with_the_otel_endpoint(make_svc):
    svc = make_svc(type="api")
    assert builders.config_hash(builders.secret_settings(svc)) != builders.config_hash(
        builders.secret_settings(svc, "http://otel:4317")
    )


@pytest.mark.parametrize(
    "change",
    [{"replicas": 4}, {"image": "registry.example/orders:2.0.0"}, {"env": [{"name": "A", "value": "b"}]}],
    ids=["replicas", "image", "env"],
)
def test_config_hash_ignores_what_is_not_in_the_secret(make_svc, change):
    def digest(svc: Any) -> str:
        return builders.config_hash(builders.secret_settings(svc))

    assert digest(make_svc(type="api")) == digest(make_svc(type="api", **change))


# --- service_url ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "url"),
    [
        (
            {"type": "data", "database": {"engine": "postgres", "secretRef": {"name": "db"}}},
            "http://orders.shop.svc.cluster.local",
        ),
        ({"type": "api"}, "http://orders.shop.svc.cluster.local"),
        ({"type": "api", "ingress": {"host": "orders.example.com"}}, "http://orders.example.com/"),
        (
            {"type": "api", "ingress": {"host": "orders.example.com", "path": "/v1", "tls": {"secretName": "t"}}},
            "https://orders.example.com/v1",
        ),
        ({"type": "bot", "bot": {"tokenSecretRef": {"name": "tg"}}}, ""),
        (
            {"type": "bot", "bot": {"mode": "webhook", "tokenSecretRef": {"name": "tg"}}},
            "http://orders.shop.svc.cluster.local",
        ),
        (
            {
                "type": "bot",
                "bot": {"mode": "webhook", "tokenSecretRef": {"name": "tg"}},
                "ingress": {"host": "bot.example.com", "path": "/tg", "tls": {"secretName": "t"}},
            },
            "https://bot.example.com/tg",
        ),
        ({"type": "worker"}, ""),
    ],
    ids=[
        "data",
        "api-in-cluster",
        "api-ingress-http",
        "api-ingress-https",
        "bot-polling",
        "bot-webhook-no-ingress",
        "bot-webhook-ingress",
        "worker",
    ],
)
def test_service_url(make_svc, spec, url):
    assert builders.service_url(make_svc(**spec)) == url


def test_env_name_for_data():
    assert builders.env_name_for_data("users") == "DATA_USERS_URL"
    assert builders.env_name_for_data("order-history-v2") == "DATA_ORDER_HISTORY_V2_URL"
