"""Broker and Redis users whose PlatformService is gone, removed; database roles, locked.

Deletion removes a service's users behind its finalizer; but a finalizer removed by hand, or a
deletion released with `platform.dev/skip-external-cleanup`, leaves them with working passwords
that nobody rotates any more. The sweep finds the users the operator made (tagged on the broker,
named and confined as cache.plan makes them in Redis, carrying its marker in PostgreSQL) whose
PlatformService no longer exists in a namespace this operator watches, and removes them. A
PostgreSQL role only loses its login: its database holds the service's data, and the deletion
policy that would have said whether to keep it is gone with the PlatformService. It runs from the
resync of whichever service comes first once `sweep_seconds` have passed, so only the replica that
acts sweeps, and only with its index of PlatformServices filled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from platform_operator import database
from platform_operator.postgres import Postgres, PostgresError
from platform_operator.rabbitmq import BrokerError, RabbitMQ
from platform_operator.redis_store import CacheError, RedisStore

log = logging.getLogger("platform_operator")

Exists = Callable[[str, str], bool]  # (namespace, name) -> does the PlatformService exist
SWEPT = {"rabbitmq": "broker users", "redis": "Redis users", "postgres": "database roles"}
Owner = tuple[str, str]  # the (namespace, name) of the PlatformService a user or role was made for
Listing = Callable[[], Awaitable[Mapping[str, Owner]]]  # a server's users (or roles) and their owners
Retire = Callable[[str, Owner], Awaitable[bool]]  # removes (or locks) one; False when there was nothing to do


def orphans(users: Iterable[str], exists: Exists, namespaces: Iterable[str] = ()) -> list[str]:
    """Users named <namespace>.<name> whose PlatformService is gone, in the watched namespaces
    (all when none are listed): another operator's namespaces are not ours to judge."""
    return orphaned(_owners_by_name(users), exists, namespaces)


def orphaned(owners: Mapping[str, Owner], exists: Exists, namespaces: Iterable[str] = ()) -> list[str]:
    """The users (or roles) whose owning PlatformService is gone, in the watched namespaces."""
    watched = set(namespaces)
    return sorted(
        user
        for user, (namespace, name) in owners.items()
        if not (watched and namespace not in watched) and not exists(namespace, name)
    )


def _owners_by_name(users: Iterable[str]) -> dict[str, Owner]:
    """A broker or Redis user is named after its service: <namespace>.<name>; other names own nothing."""
    out = {}
    for user in users:
        namespace, _, name = user.partition(".")
        if name:
            out[user] = (namespace, name)
    return out


@dataclass
class UserSweep:
    rabbitmq: RabbitMQ | None
    redis: RedisStore | None
    interval: float
    namespaces: tuple[str, ...] = ()
    postgres: Postgres | None = None
    _next: float = field(default=0.0)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        # The first sweep waits one interval: the index of PlatformServices is complete by then.
        self._next = time.monotonic() + self.interval

    def due(self) -> bool:
        return self.interval > 0 and time.monotonic() >= self._next and not self._lock.locked()

    async def maybe_run(self, exists: Exists) -> list[str]:
        if not self.due():
            return []
        async with self._lock:
            self._next = time.monotonic() + self.interval
            return await self.run(exists)

    async def run(self, exists: Exists) -> list[str]:
        """Removes the orphaned users now and locks the orphaned roles; returns them as
        `rabbitmq <user>` / `redis <user>` / `postgres <role>`."""
        broker, store, pg = self.rabbitmq, self.redis, self.postgres
        sweeps: list[tuple[str, type[Exception], Listing, Retire]] = []
        if broker is not None:
            sweeps.append(("rabbitmq", BrokerError, _by_name(broker.service_users), _user(broker.delete_user)))
        if store is not None:
            sweeps.append(("redis", CacheError, _by_name(store.service_users), _user(store.delete_user)))
        if pg is not None:
            sweeps.append(
                ("postgres", PostgresError, pg.service_roles, lambda r, o: pg.retire_role(r, database.marker(*o)))
            )
        removed = [done for sweep in sweeps for done in await self._sweep(*sweep, exists)]
        if removed:
            log.warning(
                f"Removed users whose PlatformService is gone (database roles: login disabled, databases kept):"
                f" {', '.join(removed)}."
            )
        return removed

    async def _sweep(
        self,
        server: str,
        failure: type[Exception],
        listing: Listing,
        retire: Retire,
        exists: Exists,
    ) -> list[str]:
        """One server's orphans retired (deleted, or a role's login disabled); a server that fails is
        skipped until the next sweep."""
        done = []
        try:
            owners = await listing()
            for user in orphaned(owners, exists, self.namespaces):
                if await retire(user, owners[user]):
                    done.append(f"{server} {user}")
        except failure as exc:
            log.warning(f"Sweep of {SWEPT[server]} skipped: {exc}")
        return done


def _by_name(users: Callable[[], Awaitable[list[str]]]) -> Listing:
    async def listing() -> dict[str, Owner]:
        return _owners_by_name(await users())

    return listing


def _user(delete: Callable[[str], Awaitable[bool]]) -> Retire:
    """A broker or Redis user is retired by deleting it."""
    return lambda user, _owner: delete(user)
