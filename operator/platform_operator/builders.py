"""Pure builders: a PlatformService in, the Kubernetes objects it should own out.

Nothing here talks to a cluster; every function returns plain dicts ready for server-side apply,
so the whole desired state can be tested with plain values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_operator import messaging
from platform_operator.credentials import ROTATED_FOR_ANNOTATION
from platform_operator.model import API_VERSION, KIND, PlatformService

MANAGER = "platform-operator"
PART_OF = "platform"
CONFIG_HASH_ANNOTATION = "platform.dev/config-hash"
# Pods of a service that lists a data service in dependsOn carry this label; the data service's
# NetworkPolicy admits exactly those pods.
CLIENT_LABEL_PREFIX = "data.platform.dev/"
SERVICE_PORT = 80
REQUEST_ID_HEADER = "X-Request-ID"
# Ephemeral storage covers the container's logs (the kubelet keeps up to 50Mi of them by default)
# and writable layer; /tmp is an emptyDir with its own sizeLimit.
DEFAULT_RESOURCES: dict[str, dict[str, str | int]] = {
    "requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
    "limits": {"memory": "256Mi", "ephemeral-storage": "256Mi"},
}
NGINX = "nginx.ingress.kubernetes.io/"
RESERVED_ENV = frozenset({"DATABASE_URL", "DATABASE_ENGINE", "BOT_TOKEN", "BOT_MODE", "BOT_WEBHOOK_URL"})
# Pod labels and annotations spec.pod may not set (the CRD refuses them; the builders keep ours if
# one gets through): the labels the operator selects pods by, and what the NetworkPolicies and
# the operator itself read.
RESERVED_POD_LABELS = frozenset(
    {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
    }
)
RESERVED_PREFIXES = ("platform.dev/", CLIENT_LABEL_PREFIX)
SCRAPE_PREFIX = "prometheus.io/"
TMP_VOLUME = "tmp"
HOSTNAME_KEY = "kubernetes.io/hostname"
MONITORING_API = "monitoring.coreos.com/v1"


@dataclass(frozen=True)
class Cluster:
    """What the builders need to know beyond the spec: the operator's settings about the cluster,
    and which of the Prometheus Operator's kinds the cluster serves."""

    ingress_namespace: str = "ingress-nginx"
    ingress_pod_labels: Mapping[str, str] = field(default_factory=dict)
    # Namespaces whose pods may scrape the metrics port; empty: every namespace.
    scraper_namespace_labels: Mapping[str, str] = field(
        default_factory=lambda: {"kubernetes.io/metadata.name": "monitoring"}
    )
    monitor_labels: Mapping[str, str] = field(default_factory=dict)  # for a Prometheus's serviceMonitorSelector
    service_monitors: bool = False
    pod_monitors: bool = False


def _reserved(key: str) -> bool:
    return key in RESERVED_POD_LABELS or key.startswith(RESERVED_PREFIXES)


def selector_labels(svc: PlatformService) -> dict[str, str]:
    return {"app.kubernetes.io/name": svc.name, "app.kubernetes.io/instance": svc.name}


def common_labels(svc: PlatformService) -> dict[str, str]:
    return {
        **selector_labels(svc),
        "app.kubernetes.io/component": svc.spec.type,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGER,
    }


def owner_reference(svc: PlatformService) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": svc.name,
        "uid": svc.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(svc: PlatformService, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or svc.name,
        "namespace": svc.namespace,
        "labels": common_labels(svc),
        "ownerReferences": [owner_reference(svc)],
    }


def env_name_for_data(dep: str) -> str:
    """DATA_<NAME>_URL, with the name upper-cased and dashes turned into underscores."""
    return f"DATA_{dep.upper().replace('-', '_')}_URL"


def cluster_url(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local"


def service_url(svc: PlatformService) -> str:
    """What status.url shows: the public URL through the ingress, else the in-cluster one."""
    ing = svc.spec.ingress
    if svc.wants_ingress and ing is not None:
        scheme = "https" if ing.tls else "http"
        return f"{scheme}://{ing.host}{ing.path}"
    if svc.has_service:
        return cluster_url(svc.name, svc.namespace)
    return ""


def secret_settings(
    svc: PlatformService,
    otel_endpoint: str = "",
    *,
    rabbitmq_url: str = "",
    redis_url: str = "",
    database_url: str = "",
) -> dict[str, str]:
    """The settings every service reads from its credentials Secret (names are the contract)."""
    settings = {
        "SERVICE_NAME": svc.name,
        "SERVICE_TYPE": svc.spec.type,
        "SERVICE_NAMESPACE": svc.namespace,
        "REDIS_KEY_PREFIX": svc.key_prefix,
        "IDEMPOTENCY_TTL_SECONDS": str(svc.spec.redis.idempotency_ttl_seconds),
        "REQUEST_ID_HEADER": REQUEST_ID_HEADER,
        "OTEL_SERVICE_NAME": svc.name,
        "OTEL_RESOURCE_ATTRIBUTES": (f"service.namespace={svc.namespace},platform.service.type={svc.spec.type}"),
    }
    if otel_endpoint:
        settings["OTEL_EXPORTER_OTLP_ENDPOINT"] = otel_endpoint
    if rabbitmq_url:
        settings["RABBITMQ_URL"] = rabbitmq_url
        settings["RABBITMQ_CONSUMES"] = messaging.consumer_settings(svc)
        settings["RABBITMQ_PUBLISHES"] = messaging.publishes_setting(svc)
    if redis_url:
        settings["REDIS_URL"] = redis_url
    if database_url:  # a database the operator provisioned (bring-your-own comes from the user's Secret)
        settings["DATABASE_URL"] = database_url
    return settings


def build_secret(svc: PlatformService, settings: dict[str, str], rotation: str = "") -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(settings.items())}
    meta = _metadata(svc, svc.secret_name)
    if rotation:
        meta["annotations"] = {ROTATED_FOR_ANNOTATION: rotation}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": data,
    }


def config_hash(settings: dict[str, str]) -> str:
    """A digest of the Secret's content: put on the pod template so a changed Secret rolls the pods."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _env(svc: PlatformService) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": env_name_for_data(dep), "value": cluster_url(dep, svc.namespace)} for dep in svc.spec.depends_on
    ]
    db = svc.spec.database
    if db is not None:
        env.append({"name": "DATABASE_ENGINE", "value": db.engine})
    if db is not None and db.secret_ref is not None:
        # A provisioned database's DATABASE_URL is in the credentials Secret (envFrom): an env
        # entry of the same name would win over it.
        env.append(
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": db.secret_ref.name, "key": db.secret_ref.key}},
            }
        )
    bot = svc.spec.bot
    if bot is not None:
        env.append({"name": "BOT_MODE", "value": bot.mode})
        env.append(
            {
                "name": "BOT_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": bot.token_secret_ref.name, "key": bot.token_secret_ref.key}},
            }
        )
        if svc.spec.ingress is not None and bot.mode == "webhook":
            env.append({"name": "BOT_WEBHOOK_URL", "value": service_url(svc)})
    # The user's own variables come last. The platform's names win, and the database ones are
    # reserved whatever the type, so database credentials cannot be smuggled into a service that is
    # not a data service (the CRD refuses them too).
    reserved = {e["name"] for e in env} | RESERVED_ENV
    env.extend(dict(e) for e in svc.spec.env if e.get("name") not in reserved)
    return env


def _resources(svc: PlatformService) -> dict[str, Any]:
    res = svc.spec.resources
    if res is None:
        return {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    out: dict[str, Any] = {}
    if res.requests:
        out["requests"] = {k: str(v) for k, v in res.requests.items()}
    if res.limits:
        out["limits"] = {k: str(v) for k, v in res.limits.items()}
    return out


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def metrics_port_name(svc: PlatformService) -> str:
    """The named port Prometheus scrapes: the HTTP port itself unless spec.metrics gives another."""
    return "http" if svc.metrics_port == svc.spec.port else "metrics"


def _ports(svc: PlatformService) -> list[dict[str, Any]]:
    ports = [{"name": "http", "containerPort": svc.spec.port, "protocol": "TCP"}]
    if svc.spec.metrics.enabled and metrics_port_name(svc) == "metrics":
        ports.append({"name": "metrics", "containerPort": svc.metrics_port, "protocol": "TCP"})
    return ports


def scrape_annotations(svc: PlatformService) -> dict[str, str]:
    """The conventional prometheus.io/* pod annotations, for a Prometheus without the Prometheus Operator."""
    if not svc.spec.metrics.enabled:
        return {}
    return {
        SCRAPE_PREFIX + "scrape": "true",
        SCRAPE_PREFIX + "port": str(svc.metrics_port),
        SCRAPE_PREFIX + "path": svc.spec.metrics.path,
    }


def _volumes(svc: PlatformService) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """spec.pod.volumes as pod volumes and container mounts: ConfigMaps and Secrets read-only,
    an emptyDir writable unless it says readOnly."""
    volumes: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}]
    # A private emptyDir: the root filesystem is read-only, and Python libraries expect a /tmp.
    mounts: list[dict[str, Any]] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]  # noqa: S108  # nosec B108
    for entry in svc.spec.pod.volumes:
        name = str(entry["name"])
        if name == TMP_VOLUME:
            continue  # ours (the CRD refuses the name)
        source = next((k for k in ("configMap", "secret", "emptyDir") if k in entry), None)
        if source is None:
            continue
        volumes.append({"name": name, source: dict(entry[source])})
        mount: dict[str, Any] = {"name": name, "mountPath": entry["mountPath"]}
        # The API server drops readOnly: false, so only true is written (else every resync would differ).
        if source != "emptyDir" or entry.get("readOnly"):
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def default_spread(svc: PlatformService) -> dict[str, Any]:
    """Pods of one service on different nodes where the scheduler can, on one node where it cannot."""
    return {
        "maxSkew": 1,
        "topologyKey": HOSTNAME_KEY,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector_labels(svc)},
    }


def _spread(svc: PlatformService) -> list[dict[str, Any]]:
    given = svc.spec.pod.topology_spread_constraints
    if given:
        # A constraint without a labelSelector counts this service's own pods.
        return [{"labelSelector": {"matchLabels": selector_labels(svc)}, **c} for c in given]
    return [default_spread(svc)] if svc.spreads else []


def _tolerations(svc: PlatformService) -> list[dict[str, Any]]:
    # An empty value is dropped by the API server; writing it would make every resync differ.
    return [{k: v for k, v in t.items() if v != ""} for t in svc.spec.pod.tolerations]


def _pod_spec_extras(svc: PlatformService) -> dict[str, Any]:
    """The scheduling, identity and image fields of spec.pod, only those set (an empty list or map
    is dropped by the API server, and would make every resync differ)."""
    pod = svc.spec.pod
    extras: dict[str, Any] = {
        "imagePullSecrets": [dict(s) for s in pod.image_pull_secrets],
        "serviceAccountName": pod.service_account_name,
        "nodeSelector": dict(pod.node_selector),
        "tolerations": _tolerations(svc),
        "affinity": dict(pod.affinity) if pod.affinity else None,
        "topologySpreadConstraints": _spread(svc),
        "priorityClassName": pod.priority_class_name,
    }
    return {k: v for k, v in extras.items() if v}


def build_deployment(svc: PlatformService, config_digest: str, *, scrape: bool = False) -> dict[str, Any]:
    """The service's Deployment; `scrape`: carry the prometheus.io/* annotations (no Prometheus
    Operator to give a ServiceMonitor or PodMonitor to)."""
    spec = svc.spec
    volumes, mounts = _volumes(svc)
    container: dict[str, Any] = {
        "name": "app",
        "image": spec.image,
        "ports": _ports(svc),
        "envFrom": [{"secretRef": {"name": svc.secret_name}}],
        "resources": _resources(svc),
        "startupProbe": _probe(spec.health.liveness_path, period=2, failures=60),
        "livenessProbe": _probe(spec.health.liveness_path, period=10, failures=3),
        "readinessProbe": _probe(spec.health.readiness_path, period=5, failures=3),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    env = _env(svc)
    if env:
        container["env"] = env
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)

    pod_labels = {k: v for k, v in spec.pod.labels.items() if not _reserved(k)} | common_labels(svc)
    for dep in spec.depends_on:
        pod_labels[CLIENT_LABEL_PREFIX + dep] = "client"
    annotations = {k: v for k, v in spec.pod.annotations.items() if not _reserved(k)}
    if scrape:
        annotations |= scrape_annotations(svc)
    annotations[CONFIG_HASH_ANNOTATION] = config_digest

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(svc),
        "spec": {
            **({} if spec.autoscaling is not None else {"replicas": spec.replicas}),
            "selector": {"matchLabels": selector_labels(svc)},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": annotations,
                },
                "spec": {
                    **_pod_spec_extras(svc),
                    "automountServiceAccountToken": spec.pod.automount_service_account_token,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


# What a HorizontalPodAutoscaler aims at when it is given no metric (its own default, written out
# so that the object says what it does).
DEFAULT_CPU_UTILIZATION = 80


def pod_selector(svc: PlatformService) -> str:
    """The label selector of the service's pods as a string (status.selector, for the scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(svc).items())


def build_hpa(svc: PlatformService) -> dict[str, Any] | None:
    """An autoscaling/v2 HorizontalPodAutoscaler of the Deployment, when spec.autoscaling is set.

    The Deployment then carries no replicas of ours (build_deployment leaves the field out): the
    HorizontalPodAutoscaler alone sets it."""
    scaling = svc.spec.autoscaling
    if scaling is None:
        return None
    targets = {
        "cpu": scaling.target_cpu_utilization_percentage,
        "memory": scaling.target_memory_utilization_percentage,
    }
    if not any(targets.values()):
        targets["cpu"] = DEFAULT_CPU_UTILIZATION
    metrics = [
        {"type": "Resource", "resource": {"name": name, "target": {"type": "Utilization", "averageUtilization": pct}}}
        for name, pct in targets.items()
        if pct
    ]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(svc),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": metrics,
        },
    }


def build_pdb(svc: PlatformService) -> dict[str, Any] | None:
    """A PodDisruptionBudget (policy/v1) while the service runs more than one pod: a node drain
    takes them one at a time. None with one pod (a budget for one pod only blocks drains)."""
    if not svc.spreads:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(svc),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(svc)}},
    }


def build_service(svc: PlatformService) -> dict[str, Any] | None:
    if not svc.has_service:
        return None
    ports = [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}]
    if svc.spec.metrics.enabled and metrics_port_name(svc) == "metrics":
        # A ServiceMonitor names a port of the Service.
        ports.append({"name": "metrics", "port": svc.metrics_port, "targetPort": "metrics", "protocol": "TCP"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(svc),
        "spec": {"type": "ClusterIP", "selector": selector_labels(svc), "ports": ports},
    }


def monitor_kind(svc: PlatformService) -> str:
    """A ServiceMonitor for services with a Service, a PodMonitor for workers and polling bots."""
    return "ServiceMonitor" if svc.has_service else "PodMonitor"


def build_monitor(svc: PlatformService, cluster: Cluster) -> dict[str, Any] | None:
    """The Prometheus Operator's ServiceMonitor or PodMonitor of the service's metrics, when
    spec.metrics is enabled and the cluster serves that kind (else the pods carry annotations)."""
    if not svc.spec.metrics.enabled:
        return None
    kind = monitor_kind(svc)
    if not (cluster.service_monitors if kind == "ServiceMonitor" else cluster.pod_monitors):
        return None
    meta = _metadata(svc)
    meta["labels"] = dict(cluster.monitor_labels) | meta["labels"]
    endpoint = {"port": metrics_port_name(svc), "path": svc.spec.metrics.path}
    endpoints = "endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"
    return {
        "apiVersion": MONITORING_API,
        "kind": kind,
        "metadata": meta,
        "spec": {"selector": {"matchLabels": selector_labels(svc)}, endpoints: [endpoint]},
    }


def scraped_by_annotations(svc: PlatformService, cluster: Cluster) -> bool:
    """Metrics on, and no ServiceMonitor or PodMonitor to carry them: the pods say it themselves."""
    return svc.spec.metrics.enabled and build_monitor(svc, cluster) is None


def ingress_annotations(svc: PlatformService) -> dict[str, str]:
    ing = svc.spec.ingress
    if ing is None:
        return {}
    ann: dict[str, str] = {}
    if ing.rate_limit is not None:
        rps = ing.rate_limit.rps
        burst = ing.rate_limit.burst or 5 * rps
        ann[NGINX + "limit-rps"] = str(rps)
        # ingress-nginx expresses the burst as a multiple of the rate.
        ann[NGINX + "limit-burst-multiplier"] = str(max(1, math.ceil(burst / rps)))
    if ing.cors is not None:
        ann[NGINX + "enable-cors"] = "true"
        ann[NGINX + "cors-allow-origin"] = ", ".join(ing.cors.allow_origins)
    if ing.max_body_size is not None:
        ann[NGINX + "proxy-body-size"] = ing.max_body_size
    if ing.tls is not None:
        ann[NGINX + "ssl-redirect"] = "true"
        ann[NGINX + "force-ssl-redirect"] = "true"
    return ann


def build_ingress(svc: PlatformService) -> dict[str, Any] | None:
    ing = svc.spec.ingress
    if ing is None or not svc.wants_ingress:
        return None
    meta = _metadata(svc)
    annotations = ingress_annotations(svc)
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": ing.host,
                "http": {
                    "paths": [
                        {
                            "path": ing.path,
                            "pathType": "Prefix",
                            "backend": {"service": {"name": svc.name, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }
    if ing.tls is not None:
        spec["tls"] = [{"hosts": [ing.host], "secretName": ing.tls.secret_name}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def _ingress_controller(cluster: Cluster) -> dict[str, Any]:
    peer: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cluster.ingress_namespace}}
    }
    if cluster.ingress_pod_labels:
        peer["podSelector"] = {"matchLabels": dict(cluster.ingress_pod_labels)}
    return peer


def network_policy_rules(svc: PlatformService, cluster: Cluster) -> list[dict[str, Any]]:
    """Who may open a connection to the service's pods, and on which port; nobody else may.

    data: the pods of the services that list it in dependsOn (never the ingress controller).
    api: the ingress controller when it has an ingress, and the pods of the namespace's other
    PlatformServices (a bot or an api calls it at http://<name>). webhook bot: the ingress
    controller (Telegram calls through it). workers and polling bots: nobody. Every type with
    metrics on: the scrapers' namespaces, on the metrics port."""
    http = [{"port": "http", "protocol": "TCP"}]
    rules: list[dict[str, Any]] = []
    if svc.spec.type == "data":
        rules.append({"from": [{"podSelector": {"matchLabels": {CLIENT_LABEL_PREFIX + svc.name: "client"}}}],
                      "ports": http})  # fmt: skip
    elif svc.spec.type == "api":
        platform_pods = {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/managed-by": MANAGER}
        peers = [{"podSelector": {"matchLabels": platform_pods}}]
        if svc.wants_ingress:
            peers.insert(0, _ingress_controller(cluster))
        rules.append({"from": peers, "ports": http})
    elif svc.is_webhook_bot and svc.wants_ingress:
        rules.append({"from": [_ingress_controller(cluster)], "ports": http})
    if svc.spec.metrics.enabled:
        scrapers = {"matchLabels": dict(cluster.scraper_namespace_labels)} if cluster.scraper_namespace_labels else {}
        rules.append(
            {"from": [{"namespaceSelector": scrapers}], "ports": [{"port": metrics_port_name(svc), "protocol": "TCP"}]}
        )
    return rules


def build_network_policy(svc: PlatformService, cluster: Cluster | None = None) -> dict[str, Any]:
    """Every service's pods admit only what its spec calls for (network_policy_rules); a policy
    with no rule admits nothing at all."""
    spec: dict[str, Any] = {"podSelector": {"matchLabels": selector_labels(svc)}, "policyTypes": ["Ingress"]}
    rules = network_policy_rules(svc, cluster or Cluster())
    if rules:  # an empty list is dropped by the API server: written, every resync would differ
        spec["ingress"] = rules
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _metadata(svc), "spec": spec}


def ingress_claim(svc: PlatformService) -> tuple[str, str] | None:
    """The (host, path) pair this service's ingress would route, if any."""
    if svc.spec.ingress is None or not svc.wants_ingress:
        return None
    return (svc.spec.ingress.host, svc.spec.ingress.path)
