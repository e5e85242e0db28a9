"""One reconcile of one PlatformService: desired children, applied only where they drifted, and status.

Level-triggered: called on create, update, resume, every resync and whenever a child changes; it
reads what is there, writes only what differs, and ends with no write at all when nothing changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_operator import builders, cache, conditions, credentials, database, messaging, observability
from platform_operator.backends import Backends, EventSink, cluster_view
from platform_operator.conditions import Condition
from platform_operator.drift import drifted_paths, holds
from platform_operator.kube import (
    FIELD_MANAGER,
    ConflictError,
    Kube,
    NamespaceTerminatingError,
    NotServedError,
    RefusedError,
    UnavailableError,
)
from platform_operator.model import API_VERSION, KIND, PlatformService, is_paused
from platform_operator.postgres import NameTaken, Postgres, PostgresRefused, PostgresUnavailable
from platform_operator.rabbitmq import BrokerRefused, BrokerUnavailable, RabbitMQ, reserved_names
from platform_operator.redis_store import CacheRefused, CacheUnavailable, RedisStore

log = logging.getLogger("platform_operator")
APPLIED_HASH_ANNOTATION = "platform.dev/applied-hash"

# Children that exist for some specs and not for others: when the spec stops asking for one
# (an ingress removed, a bot switched to polling), the one we made is deleted. (Every service has
# a NetworkPolicy.) The HorizontalPodAutoscaler comes with spec.autoscaling,
# the PodDisruptionBudget with more than one replica.
OPTIONAL_KINDS = (
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
)
# Takes spec.replicas of a Deployment over from the operator when autoscaling is switched on (see
# owns_replicas): the HorizontalPodAutoscaler's own updates take it from there.
HANDOVER_MANAGER = "platform-operator-handover"
PAUSED_MESSAGE = (
    "Paused by the annotation platform.dev/paused=true: the operator changes nothing of this service "
    "(children, broker, Redis) until the annotation is removed; the other conditions are as last seen."
)

# Who claims a name that only one service may hold: (host, path) of an ingress, ("host", host),
# ("queue", name), ("exchange", name), a Redis prefix (cache.prefix_claims), and which namespaces an
# exchange's publishers share it with (("exchange-share", "<exchange>><namespace>")). Each holder is
# (creationTimestamp, namespace, name); the oldest wins. (Redis prefixes rank by
# cache.prefix_order: the service already granted the prefix first.)
ClaimLookup = Callable[[tuple[str, str]], list[tuple[str, str, str]]]


@dataclass
class Outcome:
    """What one reconcile saw and did; the handlers turn it into retries and logs."""

    status: dict[str, Any]
    written: list[str] = field(default_factory=list)
    status_written: bool = False
    refused: dict[str, str] = field(default_factory=dict)  # kind -> why the API server said no
    retry: list[str] = field(default_factory=list)  # outside systems unavailable: retry with backoff


@dataclass
class ReconcileState:
    """What this process keeps between reconciles, made once at startup (handlers.configure keeps
    it in kopf's memo, whose per-object copies share it): the per-object locks, the reconciles
    queued behind each, the version of each child our last write left, and the readiness gauge's
    records."""

    # Handlers for the object itself and for its children may fire together: one reconcile at a time.
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    # Reconciles of an object queued behind the one running: they have not read anything yet.
    waiting: dict[tuple[str, str], int] = field(default_factory=dict)
    # The resourceVersion of each child as our last write left it: its watch event is our own echo.
    written: dict[tuple[str, str, str], str] = field(default_factory=dict)
    readiness: observability.Readiness = field(default_factory=observability.Readiness)

    def lock_for(self, namespace: str, name: str) -> asyncio.Lock:
        """One reconcile of an object at a time."""
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    def forget(self, namespace: str, name: str) -> None:
        """Drops what this process keeps about a PlatformService that is gone."""
        self.locks.pop((namespace, name), None)  # a reconcile still holding or awaiting it keeps its own reference
        children = {name, f"{name}-platform"}  # never another service's whose name starts with this one
        for key in [k for k in self.written if k[1] == namespace and k[2] in children]:
            self.written.pop(key, None)
        self.readiness.forget(namespace, name)

    def is_own_echo(self, kind: str, meta: Mapping[str, Any]) -> bool:
        """True when a child's watch event shows exactly the version our last apply produced: nothing
        changed since we wrote it, so there is nothing to check."""
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        version = meta.get("resourceVersion")
        return version is not None and self.written.get(key) == version

    def remember_write(self, live: Mapping[str, Any]) -> None:
        meta = live.get("metadata") or {}
        version = meta.get("resourceVersion")
        if version:
            self.written[(str(live.get("kind")), str(meta.get("namespace")), str(meta.get("name")))] = str(version)


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """Adds a digest of the object we apply; a digest that differs on the live one means our spec
    changed (even where a field was only removed, which a field-by-field comparison cannot see)."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    obj["metadata"].setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = digest
    return obj


def _owned_by(live: Mapping[str, Any], svc: PlatformService) -> bool:
    refs = live.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == svc.uid for r in refs)


def ingress_conflict(svc: PlatformService, claims: ClaimLookup) -> tuple[str, str] | None:
    """The older PlatformService that already holds this one's host and path, if any."""
    claim = builders.ingress_claim(svc)
    if claim is None:
        return None
    holders = sorted(claims(claim))
    if not holders:
        return None
    _, ns, name = holders[0]
    return None if (ns, name) == (svc.namespace, svc.name) else (ns, name)


def host_conflict(
    svc: PlatformService, claims: ClaimLookup, shared_hosts: Iterable[str] = ()
) -> tuple[str, str] | None:
    """The PlatformService of another namespace that claimed this one's ingress host first, if any.

    A host belongs to the namespace that claimed it first, on every path: another namespace
    routing a path of it could serve its pages under the owner's name (and read its cookies).
    Hosts the operator's settings list as shared are open to every namespace."""
    claim = builders.ingress_claim(svc)
    if claim is None or claim[0] in set(shared_hosts):
        return None
    keys = host_overlaps(claim[0])
    # Who routes it now (the operator's live Ingresses) comes first: a PlatformService created long
    # ago that switches its host to one another namespace routes must not take it over.
    routing = sorted({h for kind, value in keys for h in claims(("live-" + kind, value))})
    holders = routing or sorted({h for key in keys for h in claims(key)})
    if not holders or holders[0][1] == svc.namespace:
        return None
    return holders[0][1], holders[0][2]


def host_claims(host: str) -> list[tuple[str, str]]:
    """The claim keys an ingress host holds: the host, and either the domain a wildcard covers
    (`*.example.com`: one label under example.com, as ingress controllers match it) or the
    domain an exact host sits in."""
    if host.startswith("*."):
        return [("host", host), ("host-wildcard", host[2:])]
    return [("host", host), ("host-under", host.partition(".")[2])]


def host_overlaps(host: str) -> list[tuple[str, str]]:
    """The claim keys whose holders route some of the same names: the same host; for an exact host,
    the wildcard over its domain; for a wildcard, the exact hosts it covers."""
    if host.startswith("*."):
        return [("host", host), ("host-under", host[2:])]
    return [("host", host), ("host-wildcard", host.partition(".")[2])]


def prefix_conflict(svc: PlatformService, order: str, claims: ClaimLookup) -> tuple[str, str, str] | None:
    """A service of the namespace ranked before this one (cache.prefix_order: the one already granted
    its prefix first, then the older) whose Redis prefix equals or nests with this one's: (its namespace,
    its name, its prefix, or "a prefix under <ours>" where it holds one under this one's).
    Its user may read every key under its prefix, so the two would share keys."""
    me = (order, svc.namespace, svc.name)
    older = sorted(
        {h for key in cache.overlapping_claims(svc.key_prefix) for h in claims(key) if h[1:] != me[1:] and h < me}
    )
    if not older:
        return None
    holder = older[0]
    # The holder's prefix is one of the claims it holds: equal, above or under ours.
    overlapping = cache.overlapping_claims(svc.key_prefix)
    prefix = next(
        (key[1] for key in overlapping if key[0] == "redis-prefix" and holder in claims(key)),
        "a prefix under " + svc.key_prefix,
    )
    return holder[1], holder[2], prefix


def unshared_exchanges(svc: PlatformService, claims: ClaimLookup) -> dict[str, str]:
    """Other namespaces' exchanges this service consumes from without their owner's consent:
    broker name -> why. The owner is the oldest PlatformService publishing to the exchange in
    its namespace; it shares with a namespace by listing it in that publishes entry's sharedWith."""
    out: dict[str, str] = {}
    for c in svc.spec.messaging.consumes:
        if not messaging.is_foreign(svc, c):
            continue
        exchange = messaging.exchange_of(svc, c)
        owners = sorted(claims(("exchange", exchange)))
        if not owners:
            out[exchange] = (
                f"exchange {c.exchange} of namespace {c.exchange_namespace} has no publisher there to share it"
            )
            continue
        owner = owners[0]
        if owner not in claims(("exchange-share", f"{exchange}>{svc.namespace}")):
            out[exchange] = (
                f"exchange {c.exchange} of namespace {c.exchange_namespace} belongs to PlatformService "
                f"{owner[1]}/{owner[2]}, which does not share it with namespace {svc.namespace} "
                "(its publishes entry's sharedWith)"
            )
    return out


def queue_conflicts(svc: PlatformService, topology: messaging.Topology, claims: ClaimLookup) -> list[str]:
    """Queues of this service an older PlatformService already holds. Queue names are global to
    the vhost: granting a second service the same queue would let it read the first one's messages."""
    out = []
    for queue in topology.queues_in_status:
        holders = sorted(claims(("queue", queue)))
        if holders and (holders[0][1], holders[0][2]) != (svc.namespace, svc.name):
            out.append(f"queue {queue} belongs to PlatformService {holders[0][1]}/{holders[0][2]}")
    return out


def database_conflict(svc: PlatformService, plan: database.DatabasePlan | None, claims: ClaimLookup) -> str | None:
    """The older PlatformService holding this one's database name, if any. Names derive from the
    namespace and a digest, so only a service of the same namespace and name could (a recreated one)."""
    if plan is None:
        return None
    holders = sorted(claims(("database", plan.database)))
    if holders and (holders[0][1], holders[0][2]) != (svc.namespace, svc.name):
        return f"{holders[0][1]}/{holders[0][2]}"
    return None


def desired_replicas(svc: PlatformService, live: Mapping[str, Any] | None) -> int:
    """How many pods the service should have: its spec's count, or under autoscaling what the
    HorizontalPodAutoscaler last set on the Deployment (its minimum before it has set any)."""
    if svc.spec.autoscaling is None:
        return svc.spec.replicas
    replicas = ((live or {}).get("spec") or {}).get("replicas")
    return int(replicas) if replicas is not None else svc.spec.autoscaling.min_replicas


def owns_replicas(live: Mapping[str, Any], manager: str = FIELD_MANAGER) -> bool:
    """Whether `manager`'s server-side apply owns spec.replicas of this object (its managedFields).

    An apply that leaves out a field its manager alone owned removes it, and the Deployment falls
    back to 1 replica: before the operator stops applying replicas, another manager must share it."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            return True
    return False


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


def type_lookup(namespace: str, claims: ClaimLookup) -> Callable[[str], str | None]:
    """The type of a PlatformService by name in `namespace`, from the service-type index (handlers.py)."""

    def type_of(name: str) -> str | None:
        holders = claims(service_type_key(namespace, name))
        return holders[0][2] if holders else None

    return type_of


def service_type_key(namespace: str, name: str) -> tuple[str, str]:
    return ("service-type", f"{namespace}/{name}")


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
    for cond in status.get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Condition.false(
                conditions.DEPLOYMENT_READY, "ReplicaFailure", str(cond.get("message") or "Pods cannot be created.")
            ), ready
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
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


async def reconcile(
    namespace: str,
    name: str,
    kube: Kube,
    backends: Backends,
    state: ReconcileState,
    *,
    claims: ClaimLookup,
    emit: EventSink,
    external: bool = True,
) -> Outcome | None:
    """Reconciles the PlatformService as it is now; None when it is gone, being deleted, or (with
    external=False) when a reconcile already queued behind the running one will cover it.

    The object is read afresh under the lock, so triggers that queued up behind each other act on
    the latest spec and status instead of a snapshot taken before the previous reconcile wrote.
    external=False is for triggers that need RabbitMQ and Redis only if what they hold must change (a
    child changed, a spec update): they are left alone when the digest of the topology, the Redis
    plan and the credentials' rotation equals the one recorded when they were last provisioned (the
    create and resume handlers and the resync timer, which repairs drift, always visit them).
    """
    key = (namespace, name)
    lock = state.lock_for(namespace, name)
    waiting = state.waiting
    if not external and lock.locked() and waiting.get(key, 0) > 0:
        return None  # a queued reconcile reads everything afresh after the running one
    waiting[key] = waiting.get(key, 0) + 1
    try:
        await lock.acquire()
    finally:
        # Never raises: an exception here, after the lock was taken, would leave it held for good.
        left = waiting.pop(key, 1) - 1
        if left > 0:
            waiting[key] = left
    try:
        async with (backends.slots if external else backends.kube_slots) or contextlib.nullcontext():
            return await _reconcile_locked(
                namespace, name, kube, backends, state, claims=claims, emit=emit, external=external
            )
    finally:
        lock.release()


async def _reconcile_locked(
    namespace: str,
    name: str,
    kube: Kube,
    backends: Backends,
    state: ReconcileState,
    *,
    claims: ClaimLookup,
    emit: EventSink,
    external: bool,
) -> Outcome | None:
    body = await kube.get(API_VERSION, KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    svc = PlatformService.from_body(body)
    if is_paused(body["metadata"].get("annotations")):
        return await _pause(svc, body, kube, emit)
    async with observability.reconciling(namespace, name, svc.spec.type) as result:
        try:
            outcome = await _reconcile(svc, body, kube, backends, state, claims=claims, emit=emit, external=external)
        except NamespaceTerminatingError:
            result["result"] = "gone"
            return None  # the namespace controller is deleting everything in it, this object too
        result["result"] = "retry" if outcome.retry else "refused" if outcome.refused else "ok"
        if outcome.written or outcome.status_written:
            log.info(f"Reconciled {namespace}/{name}: wrote {', '.join(outcome.written) or 'status only'}.")
        ready = conditions.find(outcome.status.get("conditions") or [], conditions.READY) or {}
        state.readiness.record(namespace, name, svc.spec.type, str(ready.get("status", "Unknown")))
        return outcome


SETTLE_ATTEMPTS = 3  # lost races in a row before the reconcile gives up and retries later


@dataclass
class SettledSecret:
    """The passwords this reconcile uses: those the credentials Secret holds."""

    creds: credentials.Credentials
    before: dict[str, Any] | None  # the Secret as last read before any write of ours (None: absent)
    written: dict[str, Any] | None = None  # the Secret our precondition write left (new passwords)
    refused: str = ""  # why the API server refused that write


async def settle_credentials(
    svc: PlatformService,
    annotations: Mapping[str, str],
    live: dict[str, Any] | None,
    kube: Kube,
    settings_for: Callable[[credentials.Credentials], dict[str, str]],
    *,
    database: bool = False,
) -> SettledSecret:
    """The passwords the Secret holds; new ones (no Secret yet, a rotation asked) are written to it
    before anything else, only if it is still as read: absent (create), or the same version. Another
    replica that wrote first wins, and its passwords are read back and used: RabbitMQ and Redis are
    only ever given what the Secret holds."""
    for _ in range(SETTLE_ATTEMPTS):
        creds = credentials.resolve(annotations, live, database=database)
        if live is not None and not _owned_by(live, svc):
            return SettledSecret(creds, live)  # not ours: refused by the caller, nothing written
        wanted = stamp(builders.build_secret(svc, settings_for(creds), creds.rotation))
        if not credentials.unsettled(wanted, live):
            return SettledSecret(creds, live)
        try:
            if live is None:
                written = await kube.create(wanted)
            else:
                written = await kube.apply(wanted, if_version=live["metadata"]["resourceVersion"])
        except ConflictError:
            written = None
        except RefusedError as exc:
            return SettledSecret(creds, live, refused=str(exc))
        if written is not None:
            return SettledSecret(creds, live, written)
        log.info(f"Secret {svc.namespace}/{svc.secret_name} was written by another replica first: using its passwords.")
        live = await kube.get("v1", "Secret", svc.namespace, svc.secret_name)  # not the cache: it is behind
    raise UnavailableError(
        f"Secret {svc.namespace}/{svc.secret_name} changed under each of {SETTLE_ATTEMPTS} writes of new passwords"
    )


async def _pause(svc: PlatformService, body: Mapping[str, Any], kube: Kube, emit: EventSink) -> Outcome:
    """A paused service: its status says so once (and an Event), nothing else is written."""
    previous = dict(body.get("status") or {})
    paused = paused_conditions(previous, svc.generation, conditions.now_rfc3339())
    outcome = Outcome(status=previous)
    if paused is not None:
        await kube.patch_status(svc.namespace, svc.name, {"conditions": paused})
        outcome.status_written = True
        outcome.status = {**previous, "conditions": paused}
        emit(body, "Normal", "Paused", PAUSED_MESSAGE)
        log.info(f"Paused {svc.namespace}/{svc.name}: nothing is written for it until the annotation is removed.")
    return outcome


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


async def _reconcile(
    svc: PlatformService,
    body: Mapping[str, Any],
    kube: Kube,
    backends: Backends,
    state: ReconcileState,
    *,
    claims: ClaimLookup,
    emit: EventSink,
    external: bool = True,
) -> Outcome:
    def say(type_: str, reason: str, message: str) -> None:
        emit(body, type_, reason, message)

    cfg = backends.settings
    unshared = unshared_exchanges(svc, claims)
    topology = messaging.plan(svc, unshared=frozenset(unshared))
    cache_plan = cache.plan(svc)
    prefix_holder = prefix_conflict(svc, cache.prefix_order(body, svc.key_prefix), claims)

    def settings_for(creds: credentials.Credentials) -> dict[str, str]:
        rabbitmq_url = (
            messaging.amqp_url(
                topology.user,
                creds.rabbitmq_password,
                cfg.rabbitmq_service_host,
                cfg.rabbitmq_service_port,
                cfg.rabbitmq_vhost,
            )
            if backends.rabbitmq is not None and not topology.empty
            else ""
        )
        redis_url = (
            cache.redis_url(
                cache_plan.user, creds.redis_password, cfg.redis_service_host, cfg.redis_service_port, cfg.redis_db
            )
            if backends.redis is not None and prefix_holder is None  # a refused prefix: no Redis user, no URL
            else ""
        )
        database_url = (
            database.database_url(
                db_plan,
                creds.database_password,
                cfg.postgres_service_host or backends.postgres.host,
                cfg.postgres_service_port or backends.postgres.port,
            )
            if db_plan is not None and db_holder is None and backends.postgres is not None
            else ""
        )
        return builders.secret_settings(
            svc, cfg.otel_endpoint, rabbitmq_url=rabbitmq_url, redis_url=redis_url, database_url=database_url
        )

    live_secret = await kube.read("v1", "Secret", svc.namespace, svc.secret_name)
    db_plan = database.plan(svc)
    db_holder = database_conflict(svc, db_plan, claims)
    settled = await settle_credentials(
        svc, body["metadata"].get("annotations") or {}, live_secret, kube, settings_for, database=db_plan is not None
    )
    creds = settled.creds
    settings = settings_for(creds)
    host_holder = host_conflict(svc, claims, cfg.shared_ingress_host_list)
    conflict = ingress_conflict(svc, claims)
    cluster = cluster_view(cfg, backends.monitoring)
    wanted: list[dict[str, Any]] = [
        builders.build_secret(svc, settings, creds.rotation),
        builders.build_deployment(
            svc, builders.config_hash(settings), scrape=builders.scraped_by_annotations(svc, cluster)
        ),
    ]
    for optional in (
        builders.build_hpa(svc),
        builders.build_pdb(svc),
        builders.build_service(svc),
        builders.build_monitor(svc, cluster),
        builders.build_network_policy(svc, cluster),
        None if conflict or host_holder else builders.build_ingress(svc),
    ):
        if optional is not None:
            wanted.append(optional)

    outcome = Outcome(status={})
    live_by_kind: dict[str, dict[str, Any] | None] = {}
    made: list[str] = []  # one Event for all of them: at scale, each Event is a request
    for obj in wanted:
        stamp(obj)
        kind, name = obj["kind"], obj["metadata"]["name"]
        live = settled.before if kind == "Secret" else await kube.read(obj["apiVersion"], kind, svc.namespace, name)
        if live is not None and not _owned_by(live, svc):
            # Not ours (made by hand, or by an earlier object of the same name): never take it over.
            outcome.refused[kind] = (
                f"{kind} {name} already exists and is not owned by this PlatformService; rename or delete it"
            )
            live_by_kind[kind] = None
            continue
        if kind == "Secret" and settled.refused:
            outcome.refused[kind] = settled.refused
            live_by_kind[kind] = live
            continue
        handed_over = False
        if kind == "Deployment" and live is not None and svc.spec.autoscaling is not None and not holds(obj, live):
            handed_over = await _hand_over_replicas(kube, obj, outcome)
        if kind == "Secret" and settled.written is not None:
            applied = live_by_kind[kind] = settled.written  # new passwords, written first (settle_credentials)
        elif live is not None and not handed_over and holds(obj, live):
            live_by_kind[kind] = live
            continue
        else:
            try:
                applied = live_by_kind[kind] = await kube.apply(obj)
            except RefusedError as exc:
                outcome.refused[kind] = str(exc)
                live_by_kind[kind] = live
                continue
            except NotServedError as exc:
                if obj["apiVersion"] != builders.MONITORING_API:
                    raise
                # Its CRD went while the watch was not looking (another replica acted): the pods
                # carry the annotations instead, from the next reconcile on (soon: a retry).
                backends.monitoring.set(kind, False)
                outcome.retry.append(f"{kind} is no longer served: {exc}")
                live_by_kind[kind] = None
                continue
        state.remember_write(applied)
        outcome.written.append(f"{kind}/{name}")
        if live is None:
            made.append(f"{kind} {name}")
        elif kind == "Secret" and creds.rotation != (
            (live.get("metadata", {}).get("annotations") or {}).get(credentials.ROTATED_FOR_ANNOTATION, "")
        ):
            say("Normal", "CredentialsRotated", f"New passwords in Secret {name}; pods roll.")
        else:
            paths = [p for p in drifted_paths(obj, live) if APPLIED_HASH_ANNOTATION not in p]
            if paths:
                observability.DRIFT_REPAIRS.labels(kind).inc()
                say("Normal", "Repaired", f"Restored {kind} {name}: {', '.join(sorted(paths)[:5])}.")
            else:
                say("Normal", "Updated", f"Updated {kind} {name} to the new spec.")

    if made:
        say("Normal", "Created", f"Created {', '.join(made)}.")

    wanted_kinds = {(o["apiVersion"], o["kind"]) for o in wanted}
    for api_version, kind in (*OPTIONAL_KINDS, *backends.monitoring.kinds):
        if (api_version, kind) in wanted_kinds:
            continue
        live = await kube.read(api_version, kind, svc.namespace, svc.name, trust_absence=True)
        if (
            live is not None
            and _owned_by(live, svc)
            and await kube.delete(api_version, kind, svc.namespace, svc.name, live["metadata"]["uid"])
        ):
            outcome.written.append(f"delete {kind}/{svc.name}")
            say("Normal", "Deleted", f"Deleted {kind} {svc.name}: the spec no longer asks for it.")

    # The Secret holds the passwords before the users get them, so an operator killed in between
    # finds the same passwords on its next run (no second user, no lost password).
    secret_in_place = "Secret" not in outcome.refused
    previous = dict(body.get("status") or {})
    digest = provisioning_digest(topology, cache_plan, creds, prefix_holder, db_plan)
    before = (
        None if external or f"Secret/{svc.secret_name}" in outcome.written else provisioned_before(previous, digest)
    )
    taken = queue_conflicts(svc, topology, claims)
    queues: list[dict[str, Any]]
    if taken:
        message = "; ".join(taken) + ": choose other queue names."
        queues_cond = Condition.false(conditions.QUEUES_READY, "QueueClaimed", message)
        queues = []
    elif before is not None:
        queues_cond, queues = Condition.from_dict(before[conditions.QUEUES_READY]), list(previous.get("queues") or [])
    else:
        queues_cond, queues = await _provision_queues(
            svc, topology, backends.rabbitmq, creds, secret_in_place, outcome, say, previous, claims
        )
        if unshared and queues_cond.status == "True":
            queues_cond = Condition.false(
                conditions.QUEUES_READY,
                "ExchangeNotShared",
                "; ".join(unshared.values()) + ". The queues are declared and not bound to it.",
            )
    if prefix_holder is not None:
        cache_cond = await _refuse_cache(cache_plan, backends.redis, prefix_holder, outcome)
    elif before is not None:
        cache_cond = Condition.from_dict(before[conditions.CACHE_READY])
    else:
        cache_cond = await _provision_cache(cache_plan, backends.redis, creds, secret_in_place, outcome, say)

    if before is not None and conditions.DATABASE_READY in before:
        database_cond = Condition.from_dict(before[conditions.DATABASE_READY])
    else:
        database_cond = await _provision_database(
            svc, db_plan, db_holder, backends.postgres, creds, secret_in_place, outcome, say
        )

    deployment_cond, ready = deployment_condition(svc, live_by_kind.get("Deployment"))
    ingress_cond = ingress_condition(svc, conflict, live_by_kind.get("Ingress"), host_holder)
    if "Ingress" in outcome.refused:
        ingress_cond = Condition.false(conditions.INGRESS_READY, "IngressRefused", outcome.refused["Ingress"])
    # Children the API server refused; RabbitMQ's refusals are QueuesReady's own.
    workload_refusals = [
        msg for kind, msg in outcome.refused.items() if kind not in ("Ingress", "RabbitMQ", "PostgreSQL")
    ]
    if workload_refusals:
        deployment_cond = Condition.false(
            conditions.DEPLOYMENT_READY, "ChildRefused", "; ".join(workload_refusals)[:1000]
        )
    dependencies_cond = dependencies_condition(svc, type_lookup(svc.namespace, claims))
    aspects = [deployment_cond, queues_cond, cache_cond, ingress_cond, database_cond, dependencies_cond]

    status = desired_status(
        svc,
        previous,
        aspects,
        ready,
        conditions.now_rfc3339(),
        queues=queues,
        redis_user=cache_plan.user if backends.redis is not None and prefix_holder is None else "",
        database_plan=db_plan if database_cond.status == "True" else None,
        deployment=live_by_kind.get("Deployment"),
    )
    provisioned = all(c.status == "True" for c in (queues_cond, cache_cond, database_cond))
    status["provisionedDigest"] = digest if provisioned else ""
    changes = conditions.status_changes(previous, status)
    if changes:
        await kube.patch_status(svc.namespace, svc.name, changes)
        outcome.status_written = True
        _emit_transitions(previous, status, say)
    outcome.status = status
    return outcome


async def _hand_over_replicas(kube: Kube, obj: Mapping[str, Any], outcome: Outcome) -> bool:
    """Before the first apply without spec.replicas (autoscaling switched on): if the operator's
    apply owns the field, another manager takes a share of it at its current value, so that
    leaving it out keeps the count instead of resetting it to 1. True when it did (the Deployment
    must then be applied, to give up the operator's share)."""
    meta = obj["metadata"]
    fresh = await kube.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])  # with managedFields
    if fresh is None or not owns_replicas(fresh):
        return False
    replicas = (fresh.get("spec") or {}).get("replicas")
    share = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }
    await kube.apply(share, field_manager=HANDOVER_MANAGER)
    outcome.written.append(f"Deployment/{meta['name']} replicas handed to the HorizontalPodAutoscaler")
    return True


def dropped_queues(
    svc: PlatformService, topology: messaging.Topology, previous: Mapping[str, Any], claims: ClaimLookup
) -> list[str]:
    """Queues the last status listed that the spec no longer asks for (a consumes entry removed):
    only names of this namespace, and none another service holds now."""
    wanted = set(topology.queues_in_status)
    out = []
    for q in previous.get("queues") or []:
        name = str(q.get("name", ""))
        if not name or name in wanted or messaging.owner_namespace(name) != svc.namespace:
            continue
        if messaging.retried_queue(name) in topology.consumed:
            continue  # a retry queue of an earlier delay: retired by provisioning once its successor is bound
        holders = claims(("queue", name))
        if any((h[1], h[2]) != (svc.namespace, svc.name) for h in holders):
            continue
        out.append(name)
    return sorted(out)


async def _provision_queues(
    svc: PlatformService,
    topology: messaging.Topology,
    rabbit: RabbitMQ | None,
    creds: credentials.Credentials,
    secret_in_place: bool,
    outcome: Outcome,
    say: Callable[[str, str, str], None],
    previous: Mapping[str, Any],
    claims: ClaimLookup,
) -> tuple[Condition, list[dict[str, Any]]]:
    dropped = dropped_queues(svc, topology, previous, claims)
    if rabbit is not None and dropped:
        try:
            released = await rabbit.release_queues(
                dropped,
                delete=svc.spec.deletion_policy == "Delete",
                force=svc.spec.messaging.delete_queues_with_messages,
            )
        except BrokerUnavailable as exc:
            outcome.retry.append(str(exc))
            kept = list(previous.get("queues") or [])  # still ours to release on the next try
            why = f"{exc}; retrying with backoff."
            return Condition.false(conditions.QUEUES_READY, "RabbitMQUnavailable", why), kept
        except BrokerRefused as exc:
            outcome.refused["RabbitMQ"] = str(exc)
            return _broker_refused(exc), list(previous.get("queues") or [])
        outcome.written.append(f"rabbitmq released {', '.join(dropped)}")
        done = released.deleted + released.kept
        say("Normal", "QueuesReleased", f"No longer consumed, unbound: {', '.join(done)}.")
    if topology.empty:
        return Condition.true(conditions.QUEUES_READY, "NotRequired", "This service declares no messaging."), []
    if rabbit is None:
        return Condition.unknown(
            conditions.QUEUES_READY, "NotManaged", "The operator is not configured with a RabbitMQ to provision."
        ), []
    if not secret_in_place:
        return Condition.false(
            conditions.QUEUES_READY, "CredentialsSecretRefused", "The credentials Secret could not be written."
        ), []
    reserved = reserved_names([q.name for q in topology.queues] + [e.name for e in topology.exchanges])
    if reserved:
        # Not asked of the broker: it refuses them to everyone (its own exchanges are amq.*).
        why = (
            f"RabbitMQ reserves names beginning with 'amq.': {', '.join(reserved)} cannot be declared. Every name "
            f"of namespace {svc.namespace} begins with {svc.namespace}.; move the service to another namespace."
        )
        outcome.refused["RabbitMQ"] = why
        return Condition.false(conditions.QUEUES_READY, "ReservedName", why), []
    try:
        result = await rabbit.provision(topology, creds.rabbitmq_password)
        queues = await rabbit.queue_stats(topology.queues_in_status)
    except BrokerUnavailable as exc:
        outcome.retry.append(str(exc))
        return Condition.false(conditions.QUEUES_READY, "RabbitMQUnavailable", f"{exc}; retrying with backoff."), []
    except BrokerRefused as exc:
        outcome.refused["RabbitMQ"] = str(exc)
        return _broker_refused(exc), []
    if result.written:
        outcome.written.extend(f"rabbitmq {w}" for w in result.written)
        say("Normal", "QueuesProvisioned", f"RabbitMQ: {', '.join(result.written[:8])}.")
    if result.conflicts:
        return Condition.false(conditions.QUEUES_READY, "QueueArgumentsConflict", "; ".join(result.conflicts)), queues
    if result.missing:
        outcome.retry.append(f"waiting for {', '.join(result.missing)}")
        return Condition.false(
            conditions.QUEUES_READY,
            "ExchangeNotFound",
            f"Shared exchange {', '.join(result.missing)} is not declared yet (its owner declares it); the queues "
            "are bound once it is.",
        ), queues
    names = ", ".join(topology.consumed) or "none consumed"
    return Condition.true(
        conditions.QUEUES_READY,
        "Provisioned",
        f"Exchanges, queues ({names}), bindings and user {topology.user} in place.",
    ), queues


def _broker_refused(exc: BrokerRefused) -> Condition:
    return Condition.false(
        conditions.QUEUES_READY,
        "RabbitMQRefused",
        f"{exc}. Retrying the same declarations cannot succeed; change the spec (retried every minute).",
    )


async def _refuse_cache(
    plan: cache.CachePlan, store: RedisStore | None, holder: tuple[str, str, str], outcome: Outcome
) -> Condition:
    """A prefix another service holds: this service gets no Redis user at all (one made for an
    earlier prefix is removed), so it holds no key."""
    message = (
        f"key prefix {plan.prefix} overlaps {holder[2]}, the prefix of PlatformService {holder[0]}/{holder[1]}; "
        "choose a redis.keyPrefix that neither equals nor nests in another service's."
    )
    if store is not None:
        try:
            if await store.get_user(plan.user) is not None:
                await store.delete_user(plan.user)
                outcome.written.append(f"redis removed user {plan.user}")
        except CacheUnavailable as exc:
            outcome.retry.append(str(exc))
        except CacheRefused as exc:
            outcome.refused["Redis"] = str(exc)
    return Condition.false(conditions.CACHE_READY, "KeyPrefixClaimed", message)


async def _provision_cache(
    plan: cache.CachePlan,
    store: RedisStore | None,
    creds: credentials.Credentials,
    secret_in_place: bool,
    outcome: Outcome,
    say: Callable[[str, str, str], None],
) -> Condition:
    if store is None:
        return Condition.unknown(
            conditions.CACHE_READY, "NotManaged", "The operator is not configured with a Redis to provision."
        )
    if not secret_in_place:
        return Condition.false(
            conditions.CACHE_READY, "CredentialsSecretRefused", "The credentials Secret could not be written."
        )
    try:
        wrote = await store.ensure_user(plan, creds.redis_password)
        seeded = await store.seed(plan)
    except CacheUnavailable as exc:
        outcome.retry.append(str(exc))
        return Condition.false(conditions.CACHE_READY, "RedisUnavailable", f"{exc}; retrying with backoff.")
    except CacheRefused as exc:
        outcome.refused["Redis"] = str(exc)
        return Condition.false(
            conditions.CACHE_READY,
            "RedisRefused",
            f"{exc}. Retrying the same call cannot succeed; change the spec (retried every minute).",
        )
    if wrote:
        outcome.written.append(f"redis user {plan.user}")
        say("Normal", "CacheProvisioned", f"Redis user {plan.user} limited to {plan.key_pattern}.")
    if seeded:
        outcome.written.append(f"redis seeded {seeded} keys")
    return Condition.true(
        conditions.CACHE_READY, "Provisioned", f"Redis user {plan.user} may use keys {plan.key_pattern} only."
    )


async def _provision_database(
    svc: PlatformService,
    plan: database.DatabasePlan | None,
    holder: str | None,
    pg: Postgres | None,
    creds: credentials.Credentials,
    secret_in_place: bool,
    outcome: Outcome,
    say: Callable[[str, str, str], None],
) -> Condition:
    db = svc.spec.database
    if plan is None:
        if db is not None and db.provision:  # the CRD allows provision for postgres only
            return Condition.false(
                conditions.DATABASE_READY,
                "EngineNotProvisioned",
                f"The operator provisions PostgreSQL only, not {db.engine}.",
            )
        why = "Its DATABASE_URL comes from the Secret it names." if db is not None else "This service has no database."
        return Condition.true(conditions.DATABASE_READY, "NotRequired", why)
    if holder is not None:
        why = f"database {plan.database} belongs to PlatformService {holder}."
        outcome.refused["PostgreSQL"] = why
        return Condition.false(conditions.DATABASE_READY, "DatabaseClaimed", why)
    if pg is None:
        return Condition.false(
            conditions.DATABASE_READY,
            "NotConfigured",
            "The operator is not configured with a PostgreSQL server to provision (PLATFORM_POSTGRES_ADMIN_URL).",
        )
    if not secret_in_place:
        return Condition.false(
            conditions.DATABASE_READY, "CredentialsSecretRefused", "The credentials Secret could not be written."
        )
    try:
        result = await pg.ensure(plan, creds.database_password)
    except PostgresUnavailable as exc:
        outcome.retry.append(str(exc))
        return Condition.false(conditions.DATABASE_READY, "PostgresUnavailable", f"{exc}; retrying with backoff.")
    except NameTaken as exc:
        outcome.refused["PostgreSQL"] = str(exc)
        return Condition.false(
            conditions.DATABASE_READY,
            "DatabaseNameTaken",
            f"{exc}; the operator never takes over what it did not make. Drop or rename it (retried every minute).",
        )
    except PostgresRefused as exc:
        outcome.refused["PostgreSQL"] = str(exc)
        return Condition.false(
            conditions.DATABASE_READY,
            "DatabaseRefused",
            f"{exc}. Retrying the same cannot succeed; rename the service or ask the database's owner "
            "(retried every minute).",
        )
    if result.written:
        outcome.written.extend(f"postgres {w}" for w in result.written)
        say("Normal", "DatabaseProvisioned", f"PostgreSQL: {', '.join(result.written)}.")
    return Condition.true(
        conditions.DATABASE_READY,
        "Provisioned",
        f"Database {plan.database} owned by role {plan.role}, which may connect to it alone.",
    )


def _emit_transitions(
    previous: Mapping[str, Any], status: Mapping[str, Any], emit: Callable[[str, str, str], None]
) -> None:
    """An Event when a condition changes status or reason, so `kubectl describe` tells the story."""
    for cond in status["conditions"]:
        old = conditions.find(previous.get("conditions") or [], cond["type"])
        if old is not None and (old.get("status"), old.get("reason")) == (cond["status"], cond["reason"]):
            continue
        if cond["status"] == "False":
            emit("Warning", cond["reason"], f"{cond['type']}: {cond['message']}")
        elif cond["type"] == conditions.READY and cond["status"] == "True":
            emit("Normal", "Ready", cond["message"])
