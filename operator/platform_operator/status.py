"""The status a reconcile leaves, decided from what it saw (pure: no I/O).

Each aspect of a service (its Deployment, queues, cache, ingress, database, dependencies) has its
condition; Ready sums them up. Here too the pause, the replica counts and the digest that lets a
reconcile skip RabbitMQ, Redis and PostgreSQL when nothing they hold must change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_operator import builders, cache, conditions, credentials, database, messaging
from platform_operator.conditions import Condition
from platform_operator.model import PlatformService


@dataclass
class Outcome:
    """What one reconcile saw and did; the handlers turn it into retries and logs."""

    status: dict[str, Any]
    written: list[str] = field(default_factory=list)
    status_written: bool = False
    refused: dict[str, str] = field(default_factory=dict)  # kind -> why the API server said no
    retry: list[str] = field(default_factory=list)  # outside systems unavailable: retry with backoff


PAUSED_MESSAGE = (
    "Paused by the annotation platform.dev/paused=true: the operator changes nothing of this service "
    "(children, broker, Redis) until the annotation is removed; the other conditions are as last seen."
)


def desired_replicas(svc: PlatformService, live: Mapping[str, Any] | None) -> int:
    """How many pods the service should have: its spec's count, or under autoscaling what the
    HorizontalPodAutoscaler last set on the Deployment (its minimum before it has set any)."""
    if svc.spec.autoscaling is None:
        return svc.spec.replicas
    replicas = ((live or {}).get("spec") or {}).get("replicas")
    return int(replicas) if replicas is not None else svc.spec.autoscaling.min_replicas


def dependencies_condition(svc: PlatformService, type_of: Callable[[str], str | None]) -> Condition:
    """DependenciesReady: every dependsOn entry names a PlatformService of type data in this namespace.
    `type_of(name)` is the type of the PlatformService of that name here, None when there is none."""
    deps = svc.spec.depends_on
    if not deps:
        return Condition.true(conditions.DEPENDENCIES_READY, "NotRequired", "This service depends on no data service.")
    missing = [d for d in deps if type_of(d) is None]
    not_data = [f"{d} (type {type_of(d)})" for d in deps if type_of(d) not in (None, "data")]
    problems = []
    if missing:
        problems.append(f"no PlatformService named {', '.join(missing)} in namespace {svc.namespace}")
    if not_data:
        problems.append(f"not of type data: {', '.join(not_data)}")
    if problems:
        return Condition.false(
            conditions.DEPENDENCIES_READY,
            "DependencyNotFound" if missing else "DependencyNotData",
            "dependsOn: " + "; ".join(problems) + ". Only data services can be depended on; this turns True "
            "by itself once they exist.",
        )
    return Condition.true(conditions.DEPENDENCIES_READY, "Found", f"Data services {', '.join(deps)} exist.")


def paused_conditions(previous: Mapping[str, Any], generation: int, now: str) -> list[dict[str, Any]] | None:
    """The conditions of a paused service: Ready Unknown with reason Paused, the others as they were.
    None when the status already says so (nothing to write)."""
    before = list(previous.get("conditions") or [])
    ready = conditions.find(before, conditions.READY)
    if ready is not None and ready.get("reason") == "Paused" and ready.get("status") == "Unknown":
        return None
    paused = conditions.merge_conditions(
        [ready] if ready else [], [Condition.unknown(conditions.READY, "Paused", PAUSED_MESSAGE)], generation, now
    )
    return paused + [c for c in before if c.get("type") != conditions.READY]


def deployment_condition(svc: PlatformService, live: Mapping[str, Any] | None) -> tuple[Condition, int]:
    """DeploymentReady from the Deployment's own status, and its ready replica count."""
    if live is None:
        return Condition.unknown(conditions.DEPLOYMENT_READY, "Pending", "The Deployment is being created."), 0
    status = live.get("status") or {}
    want = desired_replicas(svc, live)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)  # old pods of a rollout count here until they are gone
    observed = int(status.get("observedGeneration") or 0)
    generation = int(live.get("metadata", {}).get("generation") or 0)
    for cond in _failing(status):
        if cond.get("type") == "ReplicaFailure":
            return Condition.false(
                conditions.DEPLOYMENT_READY, "ReplicaFailure", str(cond.get("message") or "Pods cannot be created.")
            ), ready
        return Condition.false(
            conditions.DEPLOYMENT_READY,
            "ProgressDeadlineExceeded",
            f"The rollout stalled with {ready}/{want} pods ready; check the pods' events and logs.",
        ), ready
    if observed < generation or updated < want or ready < want or total > updated:
        return Condition.false(
            conditions.DEPLOYMENT_READY, "PodsNotReady", f"{ready}/{want} pods ready, rollout in progress."
        ), ready
    if want == 0:
        return Condition.true(conditions.DEPLOYMENT_READY, "ScaledToZero", "Scaled to 0 replicas."), ready
    return Condition.true(conditions.DEPLOYMENT_READY, "PodsReady", f"{ready}/{want} pods ready."), ready


def _failing(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A Deployment's conditions that say its rollout failed: pods that cannot be made
    (ReplicaFailure) or a rollout past its deadline (ProgressDeadlineExceeded), in its order."""
    return [
        c
        for c in status.get("conditions") or []
        if (c.get("type") == "ReplicaFailure" and c.get("status") == "True")
        or (c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded")
    ]


# What the status reads of a child's own status (deployment_condition, desired_status,
# ingress_condition); the rest of it (availableReplicas, the conditions' times and messages, a
# PodDisruptionBudget's or HorizontalPodAutoscaler's counts) changes nothing a reconcile does.
_DEPLOYMENT_STATUS = ("replicas", "readyReplicas", "updatedReplicas", "observedGeneration")


def child_inputs(obj: Mapping[str, Any]) -> bytes:
    """What a reconcile reads of a child, as a digest: its metadata but the version and managed
    fields, everything but its status, and of the status only what the conditions are made from
    (a Deployment's replica counts and failures, an Ingress's address). Two versions of a child with
    equal inputs lead to the same reconcile: the second needs none (handlers.child_changed)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
    status = obj.get("status") or {}
    read: Any = None
    if obj.get("kind") == "Deployment":
        read = {k: status.get(k) for k in _DEPLOYMENT_STATUS}
        read["failing"] = [(c.get("type"), c.get("reason"), c.get("message")) for c in _failing(status)]
    elif obj.get("kind") == "Ingress":
        read = status.get("loadBalancer")
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    text = json.dumps([meta, rest, read], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def ingress_condition(
    svc: PlatformService,
    conflict: tuple[str, str] | None,
    live: Mapping[str, Any] | None,
    host_holder: tuple[str, str] | None = None,
) -> Condition:
    ing = svc.spec.ingress
    if ing is None or not svc.wants_ingress:
        return Condition.true(conditions.INGRESS_READY, "NotRequired", "This service has no ingress.")
    if host_holder is not None:
        return Condition.false(
            conditions.INGRESS_READY,
            "HostClaimed",
            f"host {ing.host} belongs to namespace {host_holder[0]} (PlatformService {host_holder[0]}/{host_holder[1]} "
            "claimed it first); choose another host, or ask the platform team to list it as shared.",
        )
    if conflict is not None:
        return Condition.false(
            conditions.INGRESS_READY,
            "HostPathConflict",
            f"{ing.host}{ing.path} is already routed to PlatformService {conflict[0]}/{conflict[1]}; "
            "choose another host or path.",
        )
    lb = ((live or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    address = ", ".join(str(i.get("ip") or i.get("hostname")) for i in lb if i)
    where = f" at {address}" if address else " (no address reported by the ingress controller yet)"
    return Condition.true(conditions.INGRESS_READY, "Configured", f"Routes {ing.host}{ing.path}{where}.")


def workload_conditions(
    svc: PlatformService,
    live_by_kind: Mapping[str, Mapping[str, Any] | None],
    refused: Mapping[str, str],
    conflict: tuple[str, str] | None,
    host_holder: tuple[str, str] | None,
) -> tuple[Condition, Condition, int]:
    """DeploymentReady and IngressReady from the children as applied (a child the API server refused
    says so), and the ready replica count."""
    deployment_cond, ready = deployment_condition(svc, live_by_kind.get("Deployment"))
    ingress_cond = ingress_condition(svc, conflict, live_by_kind.get("Ingress"), host_holder)
    if "Ingress" in refused:
        ingress_cond = Condition.false(conditions.INGRESS_READY, "IngressRefused", refused["Ingress"])
    # Children the API server refused; RabbitMQ's refusals are QueuesReady's own.
    workload_refusals = [msg for kind, msg in refused.items() if kind not in ("Ingress", "RabbitMQ", "PostgreSQL")]
    if workload_refusals:
        deployment_cond = Condition.false(
            conditions.DEPLOYMENT_READY, "ChildRefused", "; ".join(workload_refusals)[:1000]
        )
    return deployment_cond, ingress_cond, ready


def desired_status(
    svc: PlatformService,
    previous: Mapping[str, Any],
    aspects: Iterable[Condition],
    ready_replicas: int,
    now: str,
    *,
    queues: list[dict[str, Any]] | None = None,
    redis_user: str = "",
    database_plan: database.DatabasePlan | None = None,
    deployment: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status as it should be. replicas is the Deployment's current pod count (the scale
    subresource reports it), replicaSummary ready out of desired."""
    aspects = list(aspects)
    summary = conditions.summarize(aspects)
    current = int(((deployment or {}).get("status") or {}).get("replicas") or 0)
    return {
        "observedGeneration": svc.generation,
        "conditions": conditions.merge_conditions(
            previous.get("conditions") or [], [summary, *aspects], svc.generation, now
        ),
        "replicas": current,
        "readyReplicas": ready_replicas,
        "replicaSummary": f"{ready_replicas}/{desired_replicas(svc, deployment)}",
        "selector": builders.pod_selector(svc),
        "url": builders.service_url(svc),
        "credentialsSecret": svc.secret_name,
        "redis": {"keyPrefix": svc.key_prefix, **({"user": redis_user} if redis_user else {})},
        "queues": queues or [],
        **({"database": {"name": database_plan.database, "user": database_plan.role}} if database_plan else {}),
    }


@dataclass
class Provisioned:
    """What RabbitMQ, Redis and PostgreSQL hold for the service (or why not), and the digest of
    what they were asked to hold."""

    queues_cond: Condition
    queues: list[dict[str, Any]]
    cache_cond: Condition
    database_cond: Condition
    digest: str


def assemble(
    svc: PlatformService,
    previous: Mapping[str, Any],
    provisioned: Provisioned,
    live_by_kind: Mapping[str, Mapping[str, Any] | None],
    refused: Mapping[str, str],
    *,
    conflict: tuple[str, str] | None,
    host_holder: tuple[str, str] | None,
    type_of: Callable[[str], str | None],
    redis_user: str,
    db_plan: database.DatabasePlan | None,
    now: str,
) -> dict[str, Any]:
    """The whole status one reconcile leaves: every aspect's condition, Ready summing them up, and
    provisionedDigest recorded only when RabbitMQ, Redis and PostgreSQL are all in place."""
    queues_cond, cache_cond, database_cond = provisioned.queues_cond, provisioned.cache_cond, provisioned.database_cond
    deployment_cond, ingress_cond, ready = workload_conditions(svc, live_by_kind, refused, conflict, host_holder)
    dependencies_cond = dependencies_condition(svc, type_of)
    aspects = [deployment_cond, queues_cond, cache_cond, ingress_cond, database_cond, dependencies_cond]

    status = desired_status(
        svc,
        previous,
        aspects,
        ready,
        now,
        queues=provisioned.queues,
        redis_user=redis_user,
        database_plan=db_plan if database_cond.status == "True" else None,
        deployment=live_by_kind.get("Deployment"),
    )
    complete = all(c.status == "True" for c in (queues_cond, cache_cond, database_cond))
    status["provisionedDigest"] = provisioned.digest if complete else ""
    return status


def provisioning_digest(
    topology: messaging.Topology,
    cache_plan: cache.CachePlan,
    creds: credentials.Credentials,
    prefix_holder: tuple[str, str, str] | None,
    database_plan: database.DatabasePlan | None = None,
) -> str:
    """What RabbitMQ and Redis were last asked to hold, as a digest: equal, they need no visit but
    the resync's (which looks for drift). The credentials count by their rotation token: new
    passwords come only with a new token or a new Secret, and a new Secret forces the visit."""
    payload = {
        "topology": dataclasses.asdict(topology),
        "cache": dataclasses.asdict(cache_plan),
        "rotation": creds.rotation,
        "prefix_holder": prefix_holder,
        **({"database": dataclasses.asdict(database_plan)} if database_plan else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def provisioned_before(previous: Mapping[str, Any], digest: str) -> dict[str, Mapping[str, Any]] | None:
    """The QueuesReady, CacheReady and DatabaseReady conditions a previous reconcile recorded for this
    same digest, or None when RabbitMQ, Redis and PostgreSQL must be visited (never provisioned, or
    for other sections)."""
    if not digest or previous.get("provisionedDigest") != digest:
        return None
    found = {}
    for type_ in (conditions.QUEUES_READY, conditions.CACHE_READY, conditions.DATABASE_READY):
        cond = conditions.find(previous.get("conditions") or [], type_)
        if cond is None or cond.get("status") != "True":
            return None
        found[type_] = cond
    return found


# Reasons of a condition False that are a step under way, not a problem: no Warning Event.
UNDER_WAY = frozenset({"PodsNotReady"})


def emit_transitions(
    previous: Mapping[str, Any], status: Mapping[str, Any], emit: Callable[[str, str, str], None]
) -> None:
    """An Event when a condition changes status or reason, so `kubectl describe` tells the story.

    Not for a rollout under way (PodsNotReady, on DeploymentReady and on Ready): every create and
    every image change has one, and a Warning for each, two writes to the API server, said nothing
    the Updated and Ready Events do not; a rollout that stalls gets its Warning
    (ProgressDeadlineExceeded, ReplicaFailure)."""
    for cond in status["conditions"]:
        old = conditions.find(previous.get("conditions") or [], cond["type"])
        if old is not None and (old.get("status"), old.get("reason")) == (cond["status"], cond["reason"]):
            continue
        if cond["status"] == "False" and cond["reason"] in UNDER_WAY:
            continue
        if cond["status"] == "False":
            emit("Warning", cond["reason"], f"{cond['type']}: {cond['message']}")
        elif cond["type"] == conditions.READY and cond["status"] == "True":
            emit("Normal", "Ready", cond["message"])
