"""The Redis namespace and ACL user a PlatformService gets, as plain values. Pure: no client.

Each service's user may touch only keys (and pub/sub channels) under its own prefix, and only the
command categories a service needs: everything that reads and writes data, transactions and
scripts, but nothing in @dangerous or @admin (FLUSHALL, CONFIG, KEYS, DEBUG, ACL, ...), and none
of the commands that reach past the prefix although Redis files them with ordinary data commands:
SCAN and RANDOMKEY (they list every tenant's key names), DBSIZE, PUBSUB (lists every channel),
functions (loaded, flushed and called server-wide) and SCRIPT FLUSH / SCRIPT KILL (they act on
every tenant's scripts).

Prefixes are the tenancy: every prefix lies under `<namespace>:` (model.PlatformService.key_prefix),
and within a namespace no two services' prefixes may be equal or nest (`a:*` covers `a:b:*`): the
later claimant is refused. `prefix_claims` and `overlapping_claims` say which names a prefix
holds and which it must not meet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from platform_operator.model import PlatformService

COMMAND_RULES = (
    "-@all",
    "+@read",
    "+@write",
    "+@keyspace",
    "+@string",
    "+@hash",
    "+@list",
    "+@set",
    "+@sortedset",
    "+@stream",
    "+@bitmap",
    "+@hyperloglog",
    "+@geo",
    "+@pubsub",
    "+@transaction",
    "+@scripting",
    "+@connection",
    "-@dangerous",
    "-@admin",
    # Filed under @keyspace/@read/@pubsub/@scripting, yet they see or change more than the prefix.
    "-scan",
    "-randomkey",
    "-dbsize",
    "-pubsub",
    "-function",
    "-fcall",
    "-fcall_ro",
    "-script|flush",
    "-script|kill",
)


@dataclass(frozen=True)
class SeedKey:
    key: str  # the full key, prefix included
    value: str
    ttl_seconds: int | None


@dataclass(frozen=True)
class CachePlan:
    user: str
    prefix: str
    seeds: tuple[SeedKey, ...]

    @property
    def key_pattern(self) -> str:
        return f"{self.prefix}:*"

    def acl_rules(self, password: str) -> list[str]:
        """ACL SETUSER arguments; the password goes over as its SHA-256, never in clear."""
        return [
            "reset",
            "on",
            f"#{password_hash(password)}",
            f"~{self.key_pattern}",
            "resetchannels",
            f"&{self.key_pattern}",
            *COMMAND_RULES,
        ]


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def user_name(svc: PlatformService) -> str:
    return f"{svc.namespace}.{svc.name}"


def plan(svc: PlatformService) -> CachePlan:
    prefix = svc.key_prefix
    seeds = tuple(SeedKey(f"{prefix}:{k.key}", k.value, k.ttl_seconds) for k in svc.spec.redis.keys)
    return CachePlan(user=user_name(svc), prefix=prefix, seeds=seeds)


def prefix_claims(prefix: str) -> list[tuple[str, str]]:
    """The claim keys a service with this prefix holds: the prefix itself, and each prefix above it
    (so that a later `a` finds an earlier `a:b` under it)."""
    parts = prefix.split(":")
    keys = [("redis-prefix", prefix)]
    keys += [("redis-prefix-above", ":".join(parts[:i])) for i in range(1, len(parts))]
    return keys


def prefix_order(body: Mapping[str, Any], prefix: str) -> str:
    """How a claim on this prefix ranks (the lowest wins): a service whose status shows it was
    granted the prefix (a Redis user for it) before one that was not, then the older. Two services
    created in the same second would otherwise be ranked by name, and the later one could take the
    prefix from the service already using it."""
    granted = (body.get("status") or {}).get("redis") or {}
    held = bool(granted.get("user")) and granted.get("keyPrefix") == prefix
    return ("0 " if held else "1 ") + str((body.get("metadata") or {}).get("creationTimestamp", ""))


def overlapping_claims(prefix: str) -> list[tuple[str, str]]:
    """The claim keys whose holders' prefixes overlap this one: equal, above it, or under it."""
    parts = prefix.split(":")
    keys = [("redis-prefix", prefix), ("redis-prefix-above", prefix)]
    keys += [("redis-prefix", ":".join(parts[:i])) for i in range(1, len(parts))]
    return keys


def redis_url(user: str, password: str, host: str, port: int, db: int) -> str:
    return f"redis://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{db}"
