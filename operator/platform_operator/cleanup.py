"""Deleting a PlatformService: what lives outside Kubernetes, behind the finalizer.

Under `deletionPolicy: Retain` (the default) the service's queues, exchanges and keys are kept,
and its broker and Redis users are removed: what is retained is data, not a working password for
a service that no longer exists. Under `Delete` the service's queues, the exchanges no other
service uses, its broker user, its Redis user and its keys are removed; a queue still holding
messages is kept (with a Warning) unless `messaging.deleteQueuesWithMessages` asks otherwise.
A provisioned PostgreSQL database is kept under `Retain` (its role may no longer log in) and dropped
with its role under `Delete`, unless one of its tables holds a row and `database.deleteWithData` is
not set: then both are kept (with a Warning). When RabbitMQ, Redis or PostgreSQL is unreachable the
deletion waits and retries; the annotation
`platform.dev/skip-external-cleanup: "true"` releases it at once, leaving the outside resources
in place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from platform_operator import cache, database, messaging
from platform_operator.backends import Backends, EventSink
from platform_operator.model import PlatformService
from platform_operator.postgres import PostgresError, PostgresRefused, PostgresUnavailable
from platform_operator.rabbitmq import BrokerError, BrokerRefused, BrokerUnavailable
from platform_operator.redis_store import CacheError, CacheRefused, CacheUnavailable

SKIP_ANNOTATION = "platform.dev/skip-external-cleanup"
# Under Retain nothing holds the deletion: a server slower than this leaves the user to the sweep.
RETAIN_USER_REMOVAL_SECONDS = 3.0


class CleanupBlocked(Exception):
    """An outside system is unreachable; the deletion waits (the message says how to release it)."""


async def cleanup(
    svc: PlatformService,
    body: Mapping[str, Any],
    backends: Backends,
    *,
    others_using: Callable[[str], bool],
    held_by_another: Callable[[str], bool],
    prefix_taken: bool = False,
    database_taken: bool = False,
    emit: EventSink,
) -> None:
    annotations = body.get("metadata", {}).get("annotations") or {}
    if annotations.get(SKIP_ANNOTATION) == "true":
        emit(
            body,
            "Warning",
            "CleanupSkipped",
            f"{SKIP_ANNOTATION} is set: queues, users and keys are left in place; the users are removed by the "
            "operator's next sweep of users whose PlatformService is gone.",
        )
        return
    if svc.spec.deletion_policy == "Retain":
        await _remove_users(svc, backends, body, emit)
        return

    await _drop_database(svc, backends, body, emit, database_taken=database_taken)

    topology = messaging.plan(svc)
    if any(held_by_another(q) for q in topology.queues_in_status):
        # This service was refused those queues (QueueClaimed): they, and the broker user's
        # name, belong to nobody but their holder. Nothing of ours was provisioned on the broker.
        topology = messaging.Topology(user=topology.user)
    if backends.rabbitmq is not None and not topology.empty:
        own = {e.name for e in topology.exchanges if not others_using(e.name)}
        with _blocking("RabbitMQ", BrokerUnavailable, BrokerRefused, "leave the rest on the broker", body, emit):
            result = await backends.rabbitmq.deprovision(
                topology, sorted(own), force=svc.spec.messaging.delete_queues_with_messages
            )
        if result.deleted:
            emit(body, "Normal", "QueuesDeleted", f"RabbitMQ: deleted {', '.join(result.deleted)}.")
        if result.kept:
            emit(
                body,
                "Warning",
                "QueuesKept",
                f"Kept {', '.join(result.kept)}: not empty. Set messaging.deleteQueuesWithMessages to delete "
                "them with their messages.",
            )

    if backends.redis is not None:
        plan = cache.plan(svc)
        with _blocking("Redis", CacheUnavailable, CacheRefused, "leave its keys in place", body, emit):
            # A prefix refused to this service (KeyPrefixClaimed) holds another service's keys.
            removed = 0 if prefix_taken else await backends.redis.delete_keys(plan.prefix)
            await backends.redis.delete_user(plan.user)
        emit(
            body, "Normal", "CacheDeleted", f"Redis: deleted user {plan.user} and {removed} keys under {plan.prefix}:."
        )


async def _remove_users(svc: PlatformService, backends: Backends, body: Mapping[str, Any], emit: EventSink) -> None:
    """deletionPolicy Retain: the data stays, the users go. An unreachable server does not hold the
    deletion: the sweep of users whose PlatformService is gone removes them later."""
    if backends.rabbitmq is None and backends.redis is None and backends.postgres is None:
        return
    removed, waiting = [], []
    user = messaging.user_name(svc)
    if backends.rabbitmq is not None:
        try:
            if await asyncio.wait_for(backends.rabbitmq.delete_user(user), RETAIN_USER_REMOVAL_SECONDS):
                removed.append(f"broker user {user}")
        except (BrokerError, TimeoutError):
            waiting.append("RabbitMQ")
    if backends.redis is not None:
        try:
            if await asyncio.wait_for(backends.redis.delete_user(cache.user_name(svc)), RETAIN_USER_REMOVAL_SECONDS):
                removed.append(f"Redis user {cache.user_name(svc)}")
        except (CacheError, TimeoutError):
            waiting.append("Redis")
    plan = database.plan(svc)
    if backends.postgres is not None and plan is not None:
        try:
            if await asyncio.wait_for(backends.postgres.retire(plan), RETAIN_USER_REMOVAL_SECONDS):
                removed.append(f"the login of database role {plan.role}")
        except (PostgresError, TimeoutError):
            waiting.append("PostgreSQL")
    message = "deletionPolicy Retain: queues, exchanges, Redis keys and the database are kept"
    if removed:
        message += f"; removed {', '.join(removed)}"
    if waiting:
        message += f"; {' and '.join(waiting)} did not answer, its user is removed by the next sweep"
    emit(body, "Normal", "Retained", message + ".")


async def _drop_database(
    svc: PlatformService, backends: Backends, body: Mapping[str, Any], emit: EventSink, *, database_taken: bool
) -> None:
    """deletionPolicy Delete: the database and its role go, unless a table holds rows and the spec
    did not ask for them to go too (then the role keeps the database but may not log in)."""
    plan = database.plan(svc)
    if backends.postgres is None or plan is None or database_taken:
        return
    pg = backends.postgres
    with _blocking("PostgreSQL", PostgresUnavailable, PostgresRefused, "leave the database in place", body, emit):
        full = [] if svc.spec.database and svc.spec.database.delete_with_data else await pg.holds_rows(plan)
        if full:
            await pg.retire(plan)
            shown = ", ".join(full[:5]) + (f" and {len(full) - 5} more" if len(full) > 5 else "")
            emit(
                body,
                "Warning",
                "DatabaseKept",
                f"Kept database {plan.database} and its role (which may no longer log in): tables {shown} hold "
                "rows. Set database.deleteWithData to drop them with their data.",
            )
            return
        dropped = await pg.drop(plan)
    if dropped:
        emit(body, "Normal", "DatabaseDeleted", f"PostgreSQL: dropped {' and '.join(dropped)}.")


@contextlib.contextmanager
def _blocking(
    system: str,
    unreachable: type[Exception],
    refused: type[Exception],
    left: str,
    body: Mapping[str, Any],
    emit: EventSink,
) -> Iterator[None]:
    """An outside system that cannot be reached or refuses a deletion holds up the PlatformService's
    deletion: told as a Warning Event, raised as CleanupBlocked (kopf retries)."""
    try:
        yield
    except (unreachable, refused) as exc:
        message = _refused(system, exc, left) if isinstance(exc, refused) else _blocked(system, exc)
        emit(body, "Warning", "CleanupBlocked", message)
        raise CleanupBlocked(message) from exc


def _refused(system: str, exc: Exception, left: str) -> str:
    return (
        f"{system} refused a deletion ({exc}); deletion waits. To release the PlatformService and {left}, "
        f"annotate it with {SKIP_ANNOTATION}=true."
    )


def _blocked(system: str, exc: Exception) -> str:
    return (
        f"{system} is unreachable ({exc}); deletion waits and retries. If it is gone for good, "
        f"annotate the PlatformService with {SKIP_ANNOTATION}=true to release it."
    )
