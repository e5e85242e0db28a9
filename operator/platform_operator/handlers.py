"""kopf handlers: they only wire events to `reconcile` and turn its outcome into retries.

Every trigger (create, update, resume, the resync timer, a change to any child) runs the same
level-triggered reconcile, so a missed event is repaired on the next one. Deletion runs the
cleanup of what lives outside Kubernetes behind the finalizer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from platform_operator import builders, cache, cleanup, database, messaging, reconcile
from platform_operator.backends import Backends, Monitoring
from platform_operator.claims import database_conflict, host_claims, prefix_conflict, service_type_key
from platform_operator.credentials import ROTATE_ANNOTATION
from platform_operator.kube import Kube, KubeError, UnavailableError
from platform_operator.model import GROUP, PAUSED_ANNOTATION, PLURAL, VERSION, PlatformService, is_paused
from platform_operator.postgres import Postgres
from platform_operator.rabbitmq import RabbitMQ
from platform_operator.recovery import BrokerWatch
from platform_operator.redis_store import CacheError, RedisStore
from platform_operator.settings import OperatorSettings
from platform_operator.state import ReconcileState
from platform_operator.status import child_inputs
from platform_operator.sweep import UserSweep

log = logging.getLogger("platform_operator")
PSVC = (GROUP, VERSION, PLURAL)
MANAGED = {"app.kubernetes.io/managed-by": builders.MANAGER}
CHILDREN = (
    ("", "v1", "secrets", "Secret"),
    ("apps", "v1", "deployments", "Deployment"),
    ("", "v1", "services", "Service"),
    ("networking.k8s.io", "v1", "ingresses", "Ingress"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    # Not ServiceMonitors and PodMonitors: kopf's watch of a kind whose CRD is deleted while it lists
    # can fail with a 404 that stops the whole operator (seen in the e2e suite). They are read from
    # the API server in every reconcile instead (kube.UNCACHED), so the resync repairs them.
)
MONITOR_CRDS = {
    "servicemonitors.monitoring.coreos.com": "ServiceMonitor",
    "podmonitors.monitoring.coreos.com": "PodMonitor",
}
FINALIZER = "platform.dev/finalizer"

# Read once: the timer's interval needs it at import, the startup handler for everything else.
OPERATOR_SETTINGS = OperatorSettings()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours = OPERATOR_SETTINGS
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="platform.dev")
    settings.persistence.diffbase_storage = PausedAwareDiffBaseStorage(
        prefix="platform.dev", key="last-handled-configuration"
    )
    # Only warnings and errors from kopf's own log become Events; ours are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    # A deleted object keeps its finalizer until its resync timer has exited; kopf looks again
    # after this many seconds (its default, 60, held every deletion that met a running resync).
    settings.background.cancellation_polling = 1
    # kopf pauses every replica when two share a priority: each replica draws its own, and the
    # highest acts while the others stand by until it is gone (it leaves the peering on exit, or
    # its entry expires after peering_lifetime).
    settings.peering.priority = (
        ours.peering_priority if ours.peering_priority is not None else secrets.randbelow(1_000_000) + 1
    )
    settings.peering.lifetime = ours.peering_lifetime
    memo.kube = await Kube.connect(max_age=ours.child_cache_seconds)
    memo.backends = Backends(
        rabbitmq=(
            RabbitMQ(
                ours.rabbitmq_management_url,
                ours.rabbitmq_admin_user,
                ours.rabbitmq_admin_password,
                ours.rabbitmq_vhost,
                read_cache_seconds=ours.rabbitmq_read_cache_seconds,
                max_concurrent_calls=ours.rabbitmq_max_concurrent_calls,
                amqp_url=ours.amqp_url,
                amqp_channels=ours.rabbitmq_amqp_channels,
            )
            if ours.rabbitmq_management_url
            else None
        ),
        redis=RedisStore(ours.redis_url, password=ours.redis_admin_password) if ours.redis_url else None,
        postgres=(
            Postgres(
                ours.postgres_admin_url, password=ours.postgres_admin_password, timeout=ours.postgres_timeout_seconds
            )
            if ours.postgres_admin_url
            else None
        ),
        settings=ours,
        monitoring=await _discover_monitoring(memo.kube),
    )
    # kopf gives each object's handlers a shallow copy of this memo: what they record for the
    # Redis watch, and the reconciles' locks and records, go into objects that every copy shares.
    memo.state = ReconcileState()
    memo.seen = Seen()
    memo.redis_watch = (
        asyncio.ensure_future(_watch_redis(memo, ours.redis_check_seconds))
        if memo.backends.redis is not None and ours.redis_check_seconds > 0
        else None
    )
    memo.broker_watch = None
    if memo.backends.rabbitmq is not None:
        memo.broker_watch = BrokerWatch(
            memo.backends.rabbitmq, ours.broker_check_seconds, attached_for=2 * ours.resync_seconds + 30
        )
    memo.sweep = UserSweep(
        memo.backends.rabbitmq,
        memo.backends.redis,
        ours.sweep_seconds,
        tuple(ours.namespace_list),
        postgres=memo.backends.postgres,
    )
    log.info(
        "RabbitMQ %s; Redis %s; PostgreSQL %s.",
        f"managed at {ours.rabbitmq_management_url}" if ours.rabbitmq_management_url else "not managed",
        "managed" if ours.redis_url else "not managed",
        "managed" if ours.postgres_admin_url else "not managed",
    )


async def _discover_monitoring(kube: Kube) -> Monitoring:
    """Whether the cluster serves ServiceMonitors and PodMonitors, asked before any service is
    reconciled (so a restart never swaps monitors for annotations and back); the watch of their
    CRDs (monitoring_crds) follows changes from then on."""
    try:
        kinds = await kube.served_kinds(builders.MONITORING_API)
    except KubeError as exc:  # unreachable, or refused: the watch's first listing tells instead
        log.warning(f"API discovery of {builders.MONITORING_API} failed ({exc}); the watch of its CRDs will tell.")
        kinds = set()
    found = Monitoring(service_monitors="ServiceMonitor" in kinds, pod_monitors="PodMonitor" in kinds)
    log.info(
        "Prometheus Operator's CRDs: %s.",
        ", ".join(k for k in ("ServiceMonitor", "PodMonitor") if found.serves(k)) or "none (pods get annotations)",
    )
    return found


def _monitor_crd(name: str, **_: Any) -> bool:
    return name in MONITOR_CRDS


def _serves_v1(body: Mapping[str, Any]) -> bool:
    """An established CRD, not being deleted, serving v1."""
    if (body.get("metadata") or {}).get("deletionTimestamp"):
        return False
    established = any(
        c.get("type") == "Established" and c.get("status") == "True"
        for c in (body.get("status") or {}).get("conditions") or []
    )
    versions = (body.get("spec") or {}).get("versions") or []
    return established and any(v.get("name") == "v1" and v.get("served") for v in versions)


@kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions", when=_monitor_crd, id="monitoring-crds")
async def monitoring_crds(
    type: str | None,
    name: str,
    body: kopf.Body,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """The ServiceMonitor or PodMonitor CRD installed or removed: every service is reconciled at
    once, its monitor made (and the pods' prometheus.io annotations dropped) or the other way round."""
    kind = MONITOR_CRDS[name]
    served = type != "DELETED" and _serves_v1(body)
    known = kwargs.get("known_services")
    if not memo.backends.monitoring.set(kind, served) or known is None:
        return
    services = [key for key in known if isinstance(key, tuple) and len(key) == 2]
    log.info(
        f"{kind} is {'now served' if served else 'no longer served'}: reconciling {len(services)} services "
        f"({'monitors' if served else 'prometheus.io annotations'} for their metrics)."
    )
    indices = _claim_indices(kwargs)
    for namespace, svc_name in services:
        memo.seen.later(_again(namespace, svc_name, memo, indices, why=f"{name} changed", external=False))


class PausedAwareDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf records the last handled spec on the object after every change, handled or not. While
    a service is paused it records nothing (the operator writes nothing for it): the change is
    still pending when the pause ends, and the update handlers see it then."""

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if is_paused(body.metadata.annotations) and self.fetch(body=body) is not None:
            return
        super().store(body=body, patch=patch, essence=essence)


def _not_paused(annotations: Mapping[str, str], **_: Any) -> bool:
    return not is_paused(annotations)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    if memo.redis_watch is not None:
        memo.redis_watch.cancel()
    for task in memo.seen.again:
        task.cancel()
    watch = [memo.redis_watch] if memo.redis_watch is not None else []
    await asyncio.gather(*watch, *memo.seen.again, return_exceptions=True)
    if memo.get("broker_watch") is not None:
        await memo.broker_watch.stop()
    await memo.kube.close()
    if memo.backends.rabbitmq is not None:
        await memo.backends.rabbitmq.close()
    if memo.backends.redis is not None:
        await memo.backends.redis.close()
    if memo.backends.postgres is not None:
        await memo.backends.postgres.close()


# The index functions are async although they do no I/O: kopf runs sync handlers in a thread pool,
# and at a thousand services the hops to threads (and glibc's per-thread memory arenas) cost CPU
# and resident memory for nothing.
@kopf.index(*PSVC)
async def ingress_claims(
    namespace: str | None, name: str, body: kopf.Body, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], tuple[str, str, str]] | None:
    """Who routes which (host, path), and which host: the oldest claim wins, later ones are refused
    (a host on any path, when the claimant is of another namespace)."""
    try:
        claim = builders.ingress_claim(PlatformService.from_body(body))
    except ValueError:  # a spec the model cannot read claims nothing
        return None
    if claim is None:
        return None
    holder = (str(meta.get("creationTimestamp", "")), namespace or "", name)
    return {claim: holder, **dict.fromkeys(host_claims(claim[0]), holder)}


@kopf.index("networking.k8s.io", "v1", "ingresses", labels=MANAGED)
async def live_ingress_hosts(
    namespace: str | None, meta: kopf.Meta, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, str], tuple[str, str, str]]:
    """Which namespace routes which host now, by the Ingresses the operator made: a host stays with
    the namespace that routes it, even when an older PlatformService elsewhere switches to it."""
    owner = _owner(meta)
    if owner is None:
        return {}
    holder = (str(meta.get("creationTimestamp", "")), namespace or "", owner)
    out: dict[tuple[str, str], tuple[str, str, str]] = {}
    for rule in spec.get("rules") or []:
        if rule.get("host"):
            out.update({("live-" + kind, value): holder for kind, value in host_claims(rule["host"])})
    return out


@kopf.index(*PSVC)
async def queue_claims(
    namespace: str | None, name: str, body: kopf.Body, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], tuple[str, str, str]]:
    """Who holds which queue (and its .retry and .dlq): queue names are global to the vhost."""
    try:
        topology = messaging.plan(PlatformService.from_body(body))
    except ValueError:  # a spec the model cannot read claims nothing
        return {}
    created = str(meta.get("creationTimestamp", ""))
    return {("queue", q): (created, namespace or "", name) for q in topology.queues_in_status}


@kopf.index(*PSVC)
async def tenancy_claims(
    namespace: str | None, name: str, body: kopf.Body, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], tuple[str, str, str]]:
    """Who holds which Redis prefix (cache.prefix_claims), who publishes to which exchange (the
    oldest publisher owns it), with which namespaces each publisher shares it, and which database
    name (the oldest holder keeps it)."""
    try:
        svc = PlatformService.from_body(body)
    except ValueError:  # a spec the model cannot read claims nothing
        return {}
    holder = (str(meta.get("creationTimestamp", "")), namespace or "", name)
    prefix_holder = (cache.prefix_order(body, svc.key_prefix), namespace or "", name)
    out: dict[tuple[str, str], tuple[str, str, str]] = dict.fromkeys(cache.prefix_claims(svc.key_prefix), prefix_holder)
    db_plan = database.plan(svc)
    if db_plan is not None:
        out[("database", db_plan.database)] = holder
    for exchange in svc.spec.messaging.publishes:
        broker_name = messaging.broker_name(svc.namespace, exchange.name)
        out[("exchange", broker_name)] = holder
        for other in exchange.shared_with:
            out[("exchange-share", f"{broker_name}>{other}")] = holder
    return out


@kopf.index(*PSVC)
async def exchange_users(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[str, tuple[str, str]]:
    """Which services publish to or consume from each exchange of their namespace (broker names): an
    exchange is deleted with a service only when no other service uses it."""
    try:
        svc = PlatformService.from_body(body)
    except ValueError:
        return {}
    names = {messaging.broker_name(svc.namespace, p.name) for p in svc.spec.messaging.publishes}
    names |= {messaging.exchange_of(svc, c) for c in svc.spec.messaging.consumes if not messaging.is_foreign(svc, c)}
    return dict.fromkeys(names, (namespace or "", name))


@kopf.index(*PSVC)
async def service_types(
    namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], tuple[str, str, str]]:
    """The type of every PlatformService, for DependenciesReady (claims.type_lookup)."""
    holder = (str(meta.get("creationTimestamp", "")), namespace or "", str(spec.get("type", "")))
    return {service_type_key(namespace or "", name): holder}


@kopf.index(*PSVC)
async def dependents(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], str]:
    """Who lists each service in dependsOn: they are reconciled when it appears or goes."""
    return {(namespace or "", str(dep)): name for dep in spec.get("dependsOn") or []}


@kopf.index(*PSVC)
async def known_services(namespace: str | None, name: str, **_: Any) -> dict[tuple[str, str], bool]:
    """Every PlatformService there is: the sweep removes users only of those not here."""
    return {(namespace or "", name): True}


Indices = tuple[kopf.Index[Any, Any] | None, ...]
CLAIM_INDICES = ("ingress_claims", "queue_claims", "tenancy_claims", "live_ingress_hosts", "service_types")


def _claim_indices(kwargs: Mapping[str, Any]) -> Indices:
    """The indexes a reconcile reads claims from. kopf passes every index declared above to every
    handler, by the name of its function."""
    return tuple(kwargs.get(index) for index in CLAIM_INDICES)


def _post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    # kopf only reads apiVersion, kind and metadata from it.
    kopf.event(dict(body), type=type_, reason=reason, message=message)  # type: ignore[arg-type]


def _backoff(retry: int) -> float:
    return float(min(60, 2 ** min(retry, 6)))


async def _run(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    indices: Indices,
    retry: int = 0,
    *,
    external: bool = True,
) -> None:
    """The one path every trigger takes. kopf fills the index arguments (declared above)."""

    def claims(key: tuple[str, str]) -> list[tuple[str, str, str]]:
        return [holder for index in indices if index is not None for holder in index.get(key, [])]

    if namespace is None:  # PlatformService is namespaced; kopf always gives one
        return
    # Handlers run only on the replica that acts: what it last saw serves the Redis watch.
    memo.seen.indices, memo.seen.last_acted = indices, time.monotonic()
    try:
        outcome = await reconcile.reconcile(
            namespace, name, memo.kube, memo.backends, memo.state, claims=claims, emit=_post_event, external=external
        )
    except UnavailableError as exc:
        raise kopf.TemporaryError(f"Kubernetes API unavailable: {exc}", delay=_backoff(retry)) from exc
    if outcome is None:
        return
    if outcome.retry:
        raise kopf.TemporaryError("; ".join(outcome.retry), delay=_backoff(retry))
    if outcome.refused:
        # The spec cannot be applied as it is; the condition says why. Retry slowly in case the
        # obstacle (an object of the same name, an admission rule) is removed by hand.
        raise kopf.TemporaryError(f"Refused: {'; '.join(outcome.refused.values())}", delay=60)


def _attach_broker_watch(memo: kopf.Memo, indices: Indices, known: kopf.Index[Any, Any] | None) -> None:
    """Handlers run only on the replica that acts: each one tells the broker watch so (recovery.py)."""
    if known is None or memo.get("broker_watch") is None:
        return

    async def recover_one(ns: str, n: str) -> None:
        await _run(ns, n, memo, indices)

    memo.broker_watch.attach(recover_one, lambda: list(known.keys()))


@kopf.on.resume(*PSVC)
@kopf.on.create(*PSVC)
async def reconcile_service(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    retry: int,
    **kwargs: Any,
) -> None:
    indices = _claim_indices(kwargs)
    _attach_broker_watch(memo, indices, kwargs.get("known_services"))
    await _run(namespace, name, memo, indices, retry)


@kopf.on.update(*PSVC, field="spec", when=_not_paused)
@kopf.on.update(*PSVC, field=("metadata", "annotations", ROTATE_ANNOTATION), when=_not_paused)
async def update_service(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    retry: int,
    **kwargs: Any,
) -> None:
    """A spec change visits RabbitMQ and Redis only when what they hold must change (reconcile's
    digest): an image or replica change is the Kubernetes side's alone."""
    memo.seen.known = kwargs.get("known_services")
    indices = _claim_indices(kwargs)
    await _run(namespace, name, memo, indices, retry, external=False)


@kopf.timer(*PSVC, interval=OPERATOR_SETTINGS.resync_seconds, initial_delay=OPERATOR_SETTINGS.resync_seconds)
async def resync(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped | None = None,
    **kwargs: Any,
) -> None:
    """Level-triggered safety net: repairs what no event told us about, refreshes status.

    kopf stops the timer when the object is deleted (or this replica stands by): a resync still
    running then, perhaps waiting on a slow RabbitMQ or Redis, is abandoned so that it holds up
    neither the deletion nor the hand-over. Every step is idempotent; the next reconcile, if the
    object still exists, picks up where this one stopped.

    The first resync after each `sweep_seconds` also removes users whose PlatformService is gone
    (sweep.py): a timer runs only on the replica that acts, with kopf's indexes filled."""
    indices = _claim_indices(kwargs)
    known_services = memo.seen.known = kwargs.get("known_services")
    _attach_broker_watch(memo, indices, known_services)

    async def sweep_and_run() -> None:
        # The sweep too is abandoned when the object goes: it may wait on the same slow Redis.
        if known_services is not None and memo.sweep.due():
            known = known_services
            await memo.sweep.maybe_run(lambda ns, n: (ns, n) in known)
        await _run(namespace, name, memo, indices)

    if stopped is None:
        await sweep_and_run()
        return
    if stopped:
        return
    work = asyncio.ensure_future(sweep_and_run())
    halt = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait((work, halt), return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.cancel()
        if not work.done():
            work.cancel()
            await asyncio.wait((work,))
            log.info(f"Resync of {namespace}/{name} abandoned: {stopped.reason}.")
    if not work.cancelled():
        work.result()  # its retry (TemporaryError) or failure is kopf's to handle


@kopf.on.delete(*PSVC)
async def delete_service(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    retry: int,
    exchange_users: kopf.Index[Any, Any] | None = None,
    queue_claims: kopf.Index[Any, Any] | None = None,
    tenancy_claims: kopf.Index[Any, Any] | None = None,
    live_ingress_hosts: kopf.Index[Any, Any] | None = None,
    **_: Any,
) -> None:
    """Children go by garbage collection; what lives outside Kubernetes is handled here.

    A paused service keeps its finalizer: nothing is removed until the pause ends."""
    if is_paused(body.get("metadata", {}).get("annotations")):
        raise kopf.TemporaryError(
            f"Deletion waits: paused by {PAUSED_ANNOTATION}; remove the annotation to let it proceed.", delay=10
        )
    svc = PlatformService.from_body(body)
    users = exchange_users if exchange_users is not None else {}
    queues = queue_claims if queue_claims is not None else {}
    tenancy = tenancy_claims if tenancy_claims is not None else {}

    def others_using(exchange: str) -> bool:
        return any((ns, n) != (svc.namespace, svc.name) for ns, n in users.get(exchange, []))

    def held_by_another(queue: str) -> bool:
        holders = sorted(queues.get(("queue", queue), []))
        return bool(holders) and (holders[0][1], holders[0][2]) != (svc.namespace, svc.name)

    def claims(key: tuple[str, str]) -> list[tuple[str, str, str]]:
        return list(tenancy.get(key, []))

    # A prefix refused to this service (KeyPrefixClaimed) is another's: its keys are not ours to delete.
    prefix_taken = prefix_conflict(svc, cache.prefix_order(body, svc.key_prefix), claims) is not None
    database_taken = database_conflict(svc, database.plan(svc), claims) is not None
    try:
        await cleanup.cleanup(
            svc,
            body,
            memo.backends,
            others_using=others_using,
            held_by_another=held_by_another,
            prefix_taken=prefix_taken,
            database_taken=database_taken,
            emit=_post_event,
        )
    except cleanup.CleanupBlocked as exc:
        raise kopf.TemporaryError(str(exc), delay=_backoff(retry)) from exc
    finally:
        memo.state.forget(namespace or "", name)


@kopf.on.event(*PSVC)
async def forget_deleted(
    type: str | None, namespace: str | None, name: str, event: Mapping[str, Any], memo: kopf.Memo, **_: Any
) -> None:
    """Every version of a PlatformService is kept for the reconciles' reads (`Kube.read`: kopf runs
    this before the handlers of the same change). One gone for good, whatever removed its
    finalizer: this process forgets it."""
    if type == "DELETED":
        memo.kube.observe_gone("PlatformService", namespace or "", name)
        memo.state.forget(namespace or "", name)
    else:
        memo.kube.observe(event["object"])


@kopf.on.event(*PSVC, id="pause")
async def pause_or_resume(
    type: str | None,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """platform.dev/paused set or removed: the status says so at once, and on resume everything is
    reconciled (RabbitMQ and Redis too). An event handler, not an update handler, so that kopf
    records nothing on the object while it is paused (PausedAwareDiffBaseStorage)."""
    if type is None or type == "DELETED" or namespace is None or meta.get("deletionTimestamp"):
        return
    ready: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    shown = ready.get("reason") == "Paused"
    paused = is_paused(meta.get("annotations"))
    if paused == shown:
        return
    indices = _claim_indices(kwargs)
    try:
        await _run(namespace, name, memo, indices, external=not paused)
    except kopf.TemporaryError as exc:  # the resync retries
        log.warning(f"Reconcile of {namespace}/{name} after {'pausing' if paused else 'resuming'}: {exc}")


@kopf.on.event(*PSVC, id="wake-dependents")
async def wake_dependents(
    type: str | None,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """A PlatformService appeared or is gone: those that depend on it learn it now (DependenciesReady),
    not at their next resync. In the background, like the Redis watch's reconciles: this one's own
    events are not held up by its dependents'."""
    dependents = kwargs.get("dependents")
    if type not in ("ADDED", "DELETED") or namespace is None or dependents is None:
        return
    waiting = sorted(set(dependents.get((namespace, name), [])))
    if not waiting:
        return
    came = "is gone" if type == "DELETED" else "appeared"
    log.info(f"{namespace}/{name} {came}: reconciling its dependents {', '.join(waiting)}.")
    indices = _claim_indices(kwargs)
    for dependent in waiting:
        memo.seen.later(_again(namespace, dependent, memo, indices, why=f"{name} came or went", external=False))


@dataclass
class Seen:
    """What the handlers of the acting replica last saw: when they ran, kopf's indexes (live views)."""

    last_acted: float = 0.0
    indices: Indices | None = None
    known: kopf.Index[Any, Any] | None = None
    again: set[asyncio.Future[None]] = field(default_factory=set)  # reconciles started in the background

    def later(self, reconcile: Coroutine[Any, Any, None]) -> None:
        """Runs a reconcile in the background, held here until it ends (asyncio keeps only weak references)."""
        task = asyncio.ensure_future(reconcile)
        self.again.add(task)
        task.add_done_callback(self.again.discard)


def _acting(memo: kopf.Memo) -> bool:
    """Whether this replica acts: alone, or it ran a handler lately (every service's resync timer
    runs on the acting replica only, at least once per interval)."""
    if OPERATOR_SETTINGS.standalone:
        return True
    seen: Seen = memo.seen
    return time.monotonic() - seen.last_acted < 2 * OPERATOR_SETTINGS.resync_seconds + 10


async def _watch_redis(memo: kopf.Memo, interval: float) -> None:
    """Notices a Redis that lost the users the operator made (restarted without persistence, ACLs
    reset) within `interval` seconds, and provisions every service again at once instead of at
    each one's next resync."""
    store: RedisStore = memo.backends.redis
    while True:
        await asyncio.sleep(interval)
        try:
            lost = await store.users_lost()
        except CacheError:
            continue  # down: each reconcile reports it; checked again once it answers
        seen = memo.seen
        if not lost or not _acting(memo) or seen.known is None or seen.indices is None:
            continue
        services = [key for key in seen.known if isinstance(key, tuple) and len(key) == 2]
        log.warning(f"Redis has lost its users (restarted empty?): provisioning {len(services)} services again.")
        # In the background, so that the watch goes on looking (Redis may restart again meanwhile).
        for namespace, name in services:
            seen.later(_again(namespace, name, memo))


async def _again(
    namespace: str,
    name: str,
    memo: kopf.Memo,
    indices: Indices | None = None,
    why: str = "Redis lost its users",
    *,
    external: bool = True,
) -> None:
    try:
        await _run(namespace, name, memo, indices if indices is not None else memo.seen.indices, external=external)
    except kopf.TemporaryError as exc:
        log.warning(f"Reconcile of {namespace}/{name} after {why}: {exc}")


def _owner(meta: kopf.Meta) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "PlatformService" and ref.get("controller"):
            return str(ref.get("name"))
    return None


def _child_handler(group: str, version: str, plural: str, kind: str) -> None:
    @kopf.on.event(group, version, plural, labels=MANAGED, id=f"child-{plural}")
    async def child_changed(
        namespace: str | None,
        meta: kopf.Meta,
        type: str,
        event: Mapping[str, Any],
        memo: kopf.Memo,
        **kwargs: Any,
    ) -> None:
        """A child was edited, deleted or changed what its owner's status shows: reconcile its owner
        now, not at the next resync.

        Every version the watch reports is kept for the reconciles' reads (`Kube.read`). Only the
        Kubernetes side: RabbitMQ and Redis are visited by the owner's own handlers and the
        resync. Not a change: the echo of our own write (the version we just applied), and a
        version whose every field a reconcile reads is as before (status.child_inputs: most of a
        rollout's status updates)."""
        if type == "DELETED":
            memo.kube.observe_gone(kind, namespace or "", str(meta.get("name")))
        else:
            memo.kube.observe(event["object"])
        owner = _owner(meta)
        if owner is None or namespace is None:
            return
        changed = memo.state.inputs_changed(kind, meta, None if type == "DELETED" else child_inputs(event["object"]))
        if type is None:  # the initial listing: the resume handlers reconcile every owner
            return
        if type != "DELETED" and (memo.state.is_own_echo(kind, meta) or not changed):
            return
        try:
            await _run(
                namespace,
                owner,
                memo,
                _claim_indices(kwargs),
                external=False,
            )
        except kopf.TemporaryError as exc:
            log.warning(f"Reconcile of {namespace}/{owner} after a {plural} change failed: {exc}")


for _child in CHILDREN:
    _child_handler(*_child)
