"""The one door to Redis (redis.asyncio): ACL users, seeded keys, and cleanup under a prefix.

Reads first and writes only what differs: an ACL user already in the wanted shape is left alone.
Seeded keys are written with SET NX, so user data is never overwritten.

Every answer is sorted here, once (`_sorted`): done; `CacheRefused` when Redis rejects what was asked
for good (a rule or argument it does not accept: the same call cannot succeed, no fast retry);
`CacheUnavailable` for everything a retry may cure (unreachable, no answer within the deadline,
loading, read-only replica, out of memory, busy, and the operator's own admin credentials or
rights refused: fixed by the operator's configuration, not by the service's spec). Each call has
an overall deadline (3 x the socket timeout), however redis-py retries inside it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from platform_operator import observability
from platform_operator.cache import CachePlan, password_hash

log = logging.getLogger("platform_operator")


# Kept by the operator to notice a Redis that lost its users: no password, no key, no command.
MARKER_USER = "platform-operator-marker"


class CacheError(Exception):
    """Any failed call to Redis: CacheUnavailable or CacheRefused."""


class CacheUnavailable(CacheError):
    """Redis could not be reached, did not answer in time, or cannot serve now: retried with back-off."""


class CacheRefused(CacheError):
    """Redis rejected the call itself (a rule or argument it does not accept): retrying the same
    call cannot succeed."""


# Error codes of answers that a retry may cure: the server is loading, busy, a read-only replica,
# out of memory, or in a cluster state that passes.
_PASSING = ("LOADING", "BUSY", "READONLY", "OOM", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS")


def _sorted(exc: BaseException, command: str) -> CacheError:
    """The one place that sorts a failed call: unavailable (retry) or refused (the spec must change).
    Messages are the operator's own words; Redis's answer goes to the operator's log only (tenants
    read the conditions and Events)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):  # TimeoutError is an OSError
        return CacheUnavailable(f"Redis unreachable ({type(exc).__name__})")
    if isinstance(exc, NoPermissionError):
        return CacheUnavailable(
            f"Redis refused {command} to the operator's admin user (NOPERM); give that user the rights "
            "the chart's redis values describe"
        )
    code = str(exc).split(" ", 1)[0].upper() if str(exc) else ""
    if isinstance(exc, ReadOnlyError | OutOfMemoryError | TryAgainError) or code in _PASSING:
        return CacheUnavailable(f"Redis cannot serve {command} now ({code or type(exc).__name__})")
    if isinstance(exc, ResponseError):
        return CacheRefused(f"Redis refused {command} as given; the operator's log has its answer")
    return CacheUnavailable(f"Redis failed {command} ({type(exc).__name__})")


def _as_list_lines(value: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value or []]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        value = value.split()
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value]


class RedisStore:
    def __init__(self, url: str, *, password: str = "", timeout: float = 5.0, deadline: float | None = None) -> None:
        self.url = url
        # However long each read takes, and however often redis-py retries a connection inside it.
        self._deadline = deadline if deadline is not None else 3 * timeout
        # A password given apart is used where the URL holds none (a URL's own password wins).
        self._redis = aioredis.from_url(
            url,
            password=password or None,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        # The command rules (the same for every service) as Redis itself prints them, learnt from the
        # first user we set: Redis normalises what it is given, so the comparison is against its own
        # spelling. One string, not one per service: nothing here outlives a service.
        self._normalised_commands: str | None = None
        # Whether the server keeps its users in an ACL file (then every change is saved there, so
        # that a restart finds them); None until asked.
        self._acl_file: bool | None = None
        self._save: asyncio.Task[None] | None = None
        self._marked = False

    async def close(self) -> None:
        if self._save is not None:
            await asyncio.gather(self._save, return_exceptions=True)
        await self._redis.aclose()

    async def _changed_acl(self) -> None:
        """After an ACL change: saved to the server's ACL file, where it has one (at most one save
        in flight; changes made while it runs are in the next)."""
        if self._acl_file is None:
            answer = await self._do("CONFIG", "GET", "aclfile")
            values = list(answer.values()) if isinstance(answer, dict) else list(answer or [])[1:]
            self._acl_file = bool(values and values[0])
        if not self._acl_file or (self._save is not None and not self._save.done()):
            return
        self._save = asyncio.ensure_future(self._save_acl())

    async def _save_acl(self) -> None:
        await asyncio.sleep(0.2)  # the changes of one burst of reconciles, in one save
        try:
            await self._do("ACL", "SAVE")
        except CacheError as exc:
            log.warning(f"ACL SAVE failed ({exc}); the users are saved with the next change")

    async def _do(self, *args: Any) -> Any:
        command = " ".join(str(a) for a in args[:2])
        try:
            with observability.outside_call("redis", str(args[0])):
                async with asyncio.timeout(self._deadline):
                    return await self._redis.execute_command(*args)  # type: ignore[no-untyped-call]
        except TimeoutError as exc:  # the deadline (redis-py's own timeouts are RedisTimeoutError)
            log.warning("Redis %s: no answer within %ss", command, self._deadline)
            raise CacheUnavailable(f"Redis did not answer {command} within {self._deadline:g}s") from exc
        except (RedisError, OSError) as exc:
            sorted_ = _sorted(exc, command)
            log.warning("Redis %s: %r (%s)", command, exc, type(sorted_).__name__)
            raise sorted_ from exc

    async def get_user(self, user: str) -> dict[str, Any] | None:
        raw = await self._do("ACL", "GETUSER", user)
        if not raw:
            return None
        if isinstance(raw, dict):
            return raw
        items = list(raw)
        return {str(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}

    def _holds(self, info: dict[str, Any], plan: CachePlan, password: str) -> bool:
        commands = self._normalised_commands
        return (
            "on" in _as_list(info.get("flags"))
            and _as_list(info.get("passwords")) == [password_hash(password)]
            and _as_list(info.get("keys")) == [f"~{plan.key_pattern}"]
            and _as_list(info.get("channels")) == [f"&{plan.key_pattern}"]
            and commands is not None
            and info.get("commands") == commands
        )

    async def ensure_user(self, plan: CachePlan, password: str) -> bool:
        """Creates or corrects the service's ACL user; True when it wrote."""
        rules = plan.acl_rules(password)
        info = await self.get_user(plan.user)
        if info is not None and self._holds(info, plan, password):
            return False
        await self._do("ACL", "SETUSER", plan.user, *rules)
        after = await self.get_user(plan.user)
        if after is not None:
            self._normalised_commands = after.get("commands", "")
        await self._changed_acl()
        return True

    async def seed(self, plan: CachePlan) -> int:
        """Sets each seeded key only if absent; returns how many were set."""
        count = 0
        for seed in plan.seeds:
            args: list[Any] = ["SET", seed.key, seed.value, "NX"]
            if seed.ttl_seconds:
                args += ["EX", seed.ttl_seconds]
            if await self._do(*args):
                count += 1
        return count

    async def delete_user(self, user: str) -> bool:
        deleted = bool(await self._do("ACL", "DELUSER", user))
        if deleted:
            await self._changed_acl()
        return deleted

    async def users_lost(self) -> bool:
        """True when Redis has lost the users the operator made (restarted without persistence, or
        its ACLs reset): told by a marker user the operator keeps, disabled and with no rights,
        which is set again on the way. The first call only sets it."""
        if await self.get_user(MARKER_USER) is not None:
            self._marked = True
            return False
        await self._do("ACL", "SETUSER", MARKER_USER, "reset", "off")
        await self._changed_acl()
        lost, self._marked = self._marked, True
        return lost

    async def service_users(self) -> list[str]:
        """The users the operator made for services: named <namespace>.<name> and limited to keys
        under <namespace>: (see cache.plan). No other user (the admin, one made by hand) matches."""
        out = []
        for line in _as_list_lines(await self._do("ACL", "LIST")):
            words = line.split()
            if len(words) < 2 or words[0] != "user" or "." not in words[1]:
                continue
            name = words[1]
            namespace = name.split(".", 1)[0]
            keys = [w for w in words[2:] if w.startswith("~")]
            if keys and all(k.startswith(f"~{namespace}:") for k in keys):
                out.append(name)
        return sorted(out)

    async def delete_keys(self, prefix: str, *, batch: int = 500) -> int:
        """UNLINKs every key under `prefix:` in batches found by SCAN (never KEYS)."""
        deleted, cursor = 0, 0
        while True:
            cursor, keys = await self._do("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", batch)
            cursor = int(cursor)
            if keys:
                deleted += int(await self._do("UNLINK", *keys))
            if cursor == 0:
                return deleted
