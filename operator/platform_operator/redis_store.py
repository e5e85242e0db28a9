"""The one door to Redis (redis.asyncio): ACL users, seeded keys, and cleanup under a prefix.

Reads first and writes only what differs: an ACL user already in the wanted shape is left alone.
Seeded keys are written with SET NX, so user data is never overwritten.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from platform_operator import observability
from platform_operator.cache import CachePlan, password_hash

log = logging.getLogger("platform_operator")


class CacheUnavailable(Exception):
    """Redis could not be reached or failed."""


def _as_list_lines(value: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value or []]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        value = value.split()
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value]


class RedisStore:
    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self._redis = aioredis.from_url(
            url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        # The command rules as Redis itself prints them, learnt from the first user we set: Redis
        # normalises what it is given, so the comparison is against its own spelling.
        self._normalised_commands: dict[tuple[str, ...], str] = {}

    async def close(self) -> None:
        await self._redis.aclose()

    async def _do(self, *args: Any) -> Any:
        try:
            with observability.outside_call("redis", str(args[0])):
                return await self._redis.execute_command(*args)  # type: ignore[no-untyped-call]
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("Redis %s: %r", args[0], exc)
            raise CacheUnavailable(f"Redis unreachable ({type(exc).__name__})") from exc
        except RedisError as exc:
            # Its answer goes to the operator's log; status and Events (tenants read them) get ours.
            log.warning("Redis refused %s: %s", " ".join(str(a) for a in args[:2]), exc)
            raise CacheUnavailable(
                f"Redis refused {' '.join(str(a) for a in args[:2])}; the operator's log has its answer"
            ) from exc

    async def get_user(self, user: str) -> dict[str, Any] | None:
        raw = await self._do("ACL", "GETUSER", user)
        if not raw:
            return None
        if isinstance(raw, dict):
            return raw
        items = list(raw)
        return {str(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}

    def _holds(self, info: dict[str, Any], plan: CachePlan, password: str, rules: list[str]) -> bool:
        commands = self._normalised_commands.get(tuple(rules))
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
        if info is not None and self._holds(info, plan, password, rules):
            return False
        await self._do("ACL", "SETUSER", plan.user, *rules)
        after = await self.get_user(plan.user)
        if after is not None:
            self._normalised_commands[tuple(rules)] = after.get("commands", "")
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
        return bool(await self._do("ACL", "DELUSER", user))

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
