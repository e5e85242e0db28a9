"""One reconcile of one PlatformService: desired children, applied only where they drifted, and status.

Level-triggered: called on create, update, resume, every resync and whenever a child changes; it
reads what is there, writes only what differs, and ends with no write at all when nothing changed.

Read `_reconcile` for the steps: what the spec asks and who holds what (claims.py), the passwords
settled in the credentials Secret and the children applied (children.py), RabbitMQ, Redis and
PostgreSQL provisioned (provision.py), and the status decided (status.py, pure) and written.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from platform_operator import (
    builders,
    cache,
    children,
    conditions,
    credentials,
    database,
    messaging,
    observability,
    provision,
    status,
)
from platform_operator import claims as claims_
from platform_operator.backends import Backends, EventSink, cluster_view
from platform_operator.claims import ClaimLookup
from platform_operator.conditions import Condition
from platform_operator.kube import Kube, NamespaceTerminatingError
from platform_operator.model import API_VERSION, KIND, PlatformService, is_paused
from platform_operator.state import ReconcileState
from platform_operator.status import Outcome

log = logging.getLogger("platform_operator")


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

    The object is read under the lock, as the watch last reported it or as our last status write
    left it (`Kube.read`), so triggers that queued up behind each other act on the latest spec and
    status instead of a snapshot taken before the previous reconcile wrote.
    external=False is for triggers that need RabbitMQ and Redis only if what they hold must change (a
    child changed, a spec update): they are left alone when the digest of the topology, the Redis
    plan and the credentials' rotation equals the one recorded when they were last provisioned (the
    create and resume handlers and the resync timer, which repairs drift, always visit them).
    """
    async with state.turn(namespace, name, may_skip=not external) as ours:
        if not ours:
            return None  # a queued reconcile reads everything afresh after the running one
        async with (backends.slots if external else backends.kube_slots) or contextlib.nullcontext():
            return await _reconcile_turn(namespace, name, Pass(kube, backends, state, claims, emit, external))


async def _reconcile_turn(namespace: str, name: str, run: Pass) -> Outcome | None:
    """The object's turn: read afresh, then paused or reconciled inside its span and log context."""
    body = await run.kube.read(API_VERSION, KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    svc = PlatformService.from_body(body)
    if is_paused(body["metadata"].get("annotations")):
        return await _pause(svc, body, run.kube, run.emit)
    async with observability.reconciling(namespace, name, svc.spec.type) as result:
        try:
            outcome = await _reconcile(svc, body, run)
        except NamespaceTerminatingError:
            result["result"] = "gone"
            return None  # the namespace controller is deleting everything in it, this object too
        result["result"] = "retry" if outcome.retry else "refused" if outcome.refused else "ok"
        # Inside the reconcile's log context (its id, the object), and still this object's turn: a
        # later reconcile's readiness record cannot be overwritten by this one's.
        if outcome.written or outcome.status_written:
            log.info(f"Reconciled {namespace}/{name}: wrote {', '.join(outcome.written) or 'status only'}.")
        ready = conditions.find(outcome.status.get("conditions") or [], conditions.READY) or {}
        run.state.readiness.record(namespace, name, svc.spec.type, str(ready.get("status", "Unknown")))
        return outcome


async def _pause(svc: PlatformService, body: Mapping[str, Any], kube: Kube, emit: EventSink) -> Outcome:
    """A paused service: its status says so once (and an Event), nothing else is written."""
    previous = dict(body.get("status") or {})
    paused = status.paused_conditions(previous, svc.generation, conditions.now_rfc3339())
    outcome = Outcome(status=previous)
    if paused is not None:
        await kube.patch_status(svc.namespace, svc.name, {"conditions": paused})
        outcome.status_written = True
        outcome.status = {**previous, "conditions": paused}
        emit(body, "Normal", "Paused", status.PAUSED_MESSAGE)
        log.info(f"Paused {svc.namespace}/{svc.name}: nothing is written for it until the annotation is removed.")
    return outcome


@dataclass(frozen=True)
class Pass:
    """What one reconcile works with: the doors, the process's state, the claims kopf's indexes hold,
    where Events go, and whether the trigger needs RabbitMQ, Redis and PostgreSQL visited."""

    kube: Kube
    backends: Backends
    state: ReconcileState
    claims: ClaimLookup
    emit: EventSink
    external: bool


async def _reconcile(svc: PlatformService, body: Mapping[str, Any], run: Pass) -> Outcome:
    kube, backends, claims = run.kube, run.backends, run.claims

    def say(type_: str, reason: str, message: str) -> None:
        run.emit(body, type_, reason, message)

    # 1. What the spec asks of the outside systems, and the names older services already hold.
    plan = _plan(svc, body, backends, claims)
    # 2. The passwords: those the credentials Secret holds (new ones are written to it first).
    live_secret = await kube.read("v1", "Secret", svc.namespace, svc.secret_name)
    settled = await children.settle_credentials(
        svc,
        body["metadata"].get("annotations") or {},
        live_secret,
        kube,
        lambda creds: _secret_settings(svc, plan, backends, creds),
        database=plan.database is not None,
    )
    # 3. The children: applied where missing or drifted; those no longer asked for, deleted.
    wanted = _desired_children(svc, plan, backends, settled.creds)
    outcome = Outcome(status={})
    live_by_kind = await children.apply_children(svc, wanted, settled, kube, backends, run.state, outcome, say)
    await children.delete_unwanted(svc, wanted, kube, backends, outcome, say)
    # 4. RabbitMQ, Redis and PostgreSQL.
    previous = dict(body.get("status") or {})
    provisioned = await _provision_outside(svc, plan, settled.creds, run, previous, outcome, say)
    # 5. The status, decided from all of the above, written only where it changed.
    new_status = status.assemble(
        svc,
        previous,
        provisioned,
        live_by_kind,
        outcome.refused,
        conflict=plan.ingress_conflict,
        host_holder=plan.host_holder,
        type_of=claims_.type_lookup(svc.namespace, claims),
        redis_user=plan.cache.user if backends.redis is not None and plan.prefix_holder is None else "",
        db_plan=plan.database,
        now=conditions.now_rfc3339(),
    )
    changes = conditions.status_changes(previous, new_status)
    if changes:
        await kube.patch_status(svc.namespace, svc.name, changes)
        outcome.status_written = True
        status.emit_transitions(previous, new_status, say)
    outcome.status = new_status
    return outcome


@dataclass
class Plan:
    """What the spec asks of RabbitMQ, Redis and PostgreSQL, and who already holds its names (pure)."""

    unshared: dict[str, str]  # other namespaces' exchanges consumed without their owner's consent
    topology: messaging.Topology
    cache: cache.CachePlan
    prefix_holder: tuple[str, str, str] | None
    database: database.DatabasePlan | None
    database_holder: str | None
    host_holder: tuple[str, str] | None
    ingress_conflict: tuple[str, str] | None


def _plan(svc: PlatformService, body: Mapping[str, Any], backends: Backends, claims: ClaimLookup) -> Plan:
    unshared = claims_.unshared_exchanges(svc, claims)
    db_plan = database.plan(svc)
    return Plan(
        unshared=unshared,
        topology=messaging.plan(svc, unshared=frozenset(unshared)),
        cache=cache.plan(svc),
        prefix_holder=claims_.prefix_conflict(svc, cache.prefix_order(body, svc.key_prefix), claims),
        database=db_plan,
        database_holder=claims_.database_conflict(svc, db_plan, claims),
        host_holder=claims_.host_conflict(svc, claims, backends.settings.shared_ingress_host_list),
        ingress_conflict=claims_.ingress_conflict(svc, claims),
    )


def _secret_settings(
    svc: PlatformService, plan: Plan, backends: Backends, creds: credentials.Credentials
) -> dict[str, str]:
    """What the credentials Secret holds with these passwords: the URLs of what the service was given."""
    cfg = backends.settings
    rabbitmq_url = (
        messaging.amqp_url(
            plan.topology.user,
            creds.rabbitmq_password,
            cfg.rabbitmq_service_host,
            cfg.rabbitmq_service_port,
            cfg.rabbitmq_vhost,
        )
        if backends.rabbitmq is not None and not plan.topology.empty
        else ""
    )
    redis_url = (
        cache.redis_url(
            plan.cache.user, creds.redis_password, cfg.redis_service_host, cfg.redis_service_port, cfg.redis_db
        )
        if backends.redis is not None and plan.prefix_holder is None  # a refused prefix: no Redis user, no URL
        else ""
    )
    database_url = (
        database.database_url(
            plan.database,
            creds.database_password,
            cfg.postgres_service_host or backends.postgres.host,
            cfg.postgres_service_port or backends.postgres.port,
        )
        if plan.database is not None and plan.database_holder is None and backends.postgres is not None
        else ""
    )
    return builders.secret_settings(
        svc, cfg.otel_endpoint, rabbitmq_url=rabbitmq_url, redis_url=redis_url, database_url=database_url
    )


def _desired_children(
    svc: PlatformService, plan: Plan, backends: Backends, creds: credentials.Credentials
) -> list[dict[str, Any]]:
    """Every child this spec asks for (no Ingress while another service holds its host or path)."""
    settings = _secret_settings(svc, plan, backends, creds)
    conflict, host_holder = plan.ingress_conflict, plan.host_holder
    cluster = cluster_view(backends.settings, backends.monitoring)
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
    return wanted


async def _provision_outside(
    svc: PlatformService,
    plan: Plan,
    creds: credentials.Credentials,
    run: Pass,
    previous: Mapping[str, Any],
    outcome: Outcome,
    say: Callable[[str, str, str], None],
) -> status.Provisioned:
    """RabbitMQ, Redis and PostgreSQL: visited unless the status shows them provisioned for this same
    digest (and the trigger needs them only if something they hold must change)."""
    # The Secret holds the passwords before the users get them, so an operator killed in between
    # finds the same passwords on its next run (no second user, no lost password).
    backends, claims = run.backends, run.claims
    secret_in_place = "Secret" not in outcome.refused
    digest = status.provisioning_digest(plan.topology, plan.cache, creds, plan.prefix_holder, plan.database)
    before = (
        None
        if run.external or f"Secret/{svc.secret_name}" in outcome.written
        else status.provisioned_before(previous, digest)
    )
    taken = claims_.queue_conflicts(svc, plan.topology, claims)
    queues: list[dict[str, Any]]
    if taken:
        message = "; ".join(taken) + ": choose other queue names."
        queues_cond = Condition.false(conditions.QUEUES_READY, "QueueClaimed", message)
        queues = []
    elif before is not None:
        queues_cond, queues = Condition.from_dict(before[conditions.QUEUES_READY]), list(previous.get("queues") or [])
    else:
        queues_cond, queues = await provision.provision_queues(
            svc, plan.topology, backends.rabbitmq, creds, secret_in_place, outcome, say, previous, claims
        )
        if plan.unshared and queues_cond.status == "True":
            queues_cond = Condition.false(
                conditions.QUEUES_READY,
                "ExchangeNotShared",
                "; ".join(plan.unshared.values()) + ". The queues are declared and not bound to it.",
            )
    if plan.prefix_holder is not None:
        cache_cond = await provision.refuse_cache(plan.cache, backends.redis, plan.prefix_holder, outcome)
    elif before is not None:
        cache_cond = Condition.from_dict(before[conditions.CACHE_READY])
    else:
        cache_cond = await provision.provision_cache(plan.cache, backends.redis, creds, secret_in_place, outcome, say)

    if before is not None and conditions.DATABASE_READY in before:
        database_cond = Condition.from_dict(before[conditions.DATABASE_READY])
    else:
        database_cond = await provision.provision_database(
            svc, plan.database, plan.database_holder, backends.postgres, creds, secret_in_place, outcome, say
        )
    return status.Provisioned(queues_cond, queues, cache_cond, database_cond, digest)
