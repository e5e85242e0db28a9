"""What a service holds outside Kubernetes, provisioned by one reconcile: its RabbitMQ topology and
user, its Redis user and keys, its PostgreSQL database and role. Each gives its aspect's condition;
an unreachable server is a retry, a refusal is reported and retried slowly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from platform_operator import cache, conditions, credentials, database, messaging
from platform_operator.claims import ClaimLookup, dropped_queues
from platform_operator.conditions import Condition
from platform_operator.model import PlatformService
from platform_operator.postgres import NameTaken, Postgres, PostgresRefused, PostgresUnavailable
from platform_operator.rabbitmq import BrokerRefused, BrokerUnavailable, RabbitMQ, reserved_names
from platform_operator.redis_store import CacheRefused, CacheUnavailable, RedisStore
from platform_operator.status import Outcome


async def provision_queues(
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
        except BROKER_FAILURES.kinds as exc:
            kept = list(previous.get("queues") or [])  # still ours to release on the next try
            return BROKER_FAILURES.condition_for(exc, outcome), kept
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
        return no_secret(conditions.QUEUES_READY), []
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
    except BROKER_FAILURES.kinds as exc:
        return BROKER_FAILURES.condition_for(exc, outcome), []
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


@dataclass(frozen=True)
class Failures:
    """How one server's failures read in its condition. Each known exception class (the most specific
    first) has its reason and, for a refusal, what the user can do about it: the same call cannot
    succeed, so it is reported and retried slowly. Without advice, the server did not answer in
    time and the reconcile is retried with backoff."""

    server: str
    aspect: str  # the condition's type
    reasons: tuple[tuple[type[Exception], str, str | None], ...]

    @property
    def kinds(self) -> tuple[type[Exception], ...]:
        return tuple(kind for kind, _, _ in self.reasons)

    def condition_for(self, exc: Exception, outcome: Outcome) -> Condition:
        reason, advice = next((r, a) for kind, r, a in self.reasons if isinstance(exc, kind))
        if advice is None:
            outcome.retry.append(str(exc))
            return Condition.false(self.aspect, reason, f"{exc}; retrying with backoff.")
        outcome.refused[self.server] = str(exc)
        return Condition.false(self.aspect, reason, f"{exc}{advice} (retried every minute).")


BROKER_FAILURES = Failures(
    "RabbitMQ",
    conditions.QUEUES_READY,
    (
        (BrokerUnavailable, "RabbitMQUnavailable", None),
        (BrokerRefused, "RabbitMQRefused", ". Retrying the same declarations cannot succeed; change the spec"),
    ),
)
CACHE_FAILURES = Failures(
    "Redis",
    conditions.CACHE_READY,
    (
        (CacheUnavailable, "RedisUnavailable", None),
        (CacheRefused, "RedisRefused", ". Retrying the same call cannot succeed; change the spec"),
    ),
)
DATABASE_FAILURES = Failures(
    "PostgreSQL",
    conditions.DATABASE_READY,
    (
        (PostgresUnavailable, "PostgresUnavailable", None),
        (
            NameTaken,
            "DatabaseNameTaken",
            "; the operator never takes over what it did not make. Drop or rename it",
        ),
        (
            PostgresRefused,
            "DatabaseRefused",
            ". Retrying the same cannot succeed; rename the service or ask the database's owner",
        ),
    ),
)


def no_secret(condition: str) -> Condition:
    return Condition.false(condition, "CredentialsSecretRefused", "The credentials Secret could not be written.")


async def refuse_cache(
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


async def provision_cache(
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
        return no_secret(conditions.CACHE_READY)
    try:
        wrote = await store.ensure_user(plan, creds.redis_password)
        seeded = await store.seed(plan)
    except CACHE_FAILURES.kinds as exc:
        return CACHE_FAILURES.condition_for(exc, outcome)
    if wrote:
        outcome.written.append(f"redis user {plan.user}")
        say("Normal", "CacheProvisioned", f"Redis user {plan.user} limited to {plan.key_pattern}.")
    if seeded:
        outcome.written.append(f"redis seeded {seeded} keys")
    return Condition.true(
        conditions.CACHE_READY, "Provisioned", f"Redis user {plan.user} may use keys {plan.key_pattern} only."
    )


async def provision_database(
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
        # The CRD allows provision only for postgres, and a database only for type data: an object
        # written before those rules (or past them) is told which one it breaks.
        if db is not None and db.provision and db.engine != "postgres":
            return Condition.false(
                conditions.DATABASE_READY,
                "EngineNotProvisioned",
                f"The operator provisions PostgreSQL only, not {db.engine}.",
            )
        if db is not None and db.provision:
            return Condition.false(
                conditions.DATABASE_READY,
                "NotADataService",
                f"Only a data service gets a database of its own; this one is of type {svc.spec.type}.",
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
        return no_secret(conditions.DATABASE_READY)
    try:
        result = await pg.ensure(plan, creds.database_password)
    except DATABASE_FAILURES.kinds as exc:
        return DATABASE_FAILURES.condition_for(exc, outcome)
    if result.written:
        outcome.written.extend(f"postgres {w}" for w in result.written)
        say("Normal", "DatabaseProvisioned", f"PostgreSQL: {', '.join(result.written)}.")
    return Condition.true(
        conditions.DATABASE_READY,
        "Provisioned",
        f"Database {plan.database} owned by role {plan.role}, which may connect to it alone.",
    )
