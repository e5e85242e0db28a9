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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from platform_operator import database
from platform_operator.postgres import Postgres, PostgresError
from platform_operator.rabbitmq import BrokerError, RabbitMQ
from platform_operator.redis_store import CacheError, RedisStore

log = logging.getLogger("platform_operator")

Exists = Callable[[str, str], bool]  # (namespace, name) -> does the PlatformService exist


def orphans(users: Iterable[str], exists: Exists, namespaces: Iterable[str] = ()) -> list[str]:
    """Users named <namespace>.<name> whose PlatformService is gone, in the watched namespaces
    (all when none are listed): another operator's namespaces are not ours to judge."""
    watched = set(namespaces)
    out = []
    for user in users:
        namespace, _, name = user.partition(".")
        if not name or (watched and namespace not in watched):
            continue
        if not exists(namespace, name):
            out.append(user)
    return sorted(out)


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
        removed: list[str] = []
        if self.rabbitmq is not None:
            try:
                for user in orphans(await self.rabbitmq.service_users(), exists, self.namespaces):
                    if await self.rabbitmq.delete_user(user):
                        removed.append(f"rabbitmq {user}")
            except BrokerError as exc:
                log.warning(f"Sweep of broker users skipped: {exc}")
        if self.redis is not None:
            try:
                for user in orphans(await self.redis.service_users(), exists, self.namespaces):
                    if await self.redis.delete_user(user):
                        removed.append(f"redis {user}")
            except CacheError as exc:
                log.warning(f"Sweep of Redis users skipped: {exc}")
        if self.postgres is not None:
            try:
                roles = await self.postgres.service_roles()
                for role, (namespace, name) in roles.items():
                    if (self.namespaces and namespace not in self.namespaces) or exists(namespace, name):
                        continue
                    if await self.postgres.retire_role(role, database.marker(namespace, name)):
                        removed.append(f"postgres {role}")
            except PostgresError as exc:
                log.warning(f"Sweep of database roles skipped: {exc}")
        if removed:
            log.warning(
                f"Removed users whose PlatformService is gone (database roles: login disabled, databases kept):"
                f" {', '.join(removed)}."
            )
        return removed
