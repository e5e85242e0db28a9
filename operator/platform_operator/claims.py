"""Names only one PlatformService may hold, and who holds them (pure: lookups in kopf's indexes,
which handlers.py fills, passed in as a function).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from platform_operator import builders, cache, database, messaging
from platform_operator.model import PlatformService

# Who claims a name that only one service may hold: (host, path) of an ingress, ("host", host),
# ("queue", name), ("exchange", name), a Redis prefix (cache.prefix_claims), and which namespaces an
# exchange's publishers share it with (("exchange-share", "<exchange>><namespace>")). Each holder is
# (creationTimestamp, namespace, name); the oldest wins. (Redis prefixes rank by
# cache.prefix_order: the service already granted the prefix first.)
ClaimLookup = Callable[[tuple[str, str]], list[tuple[str, str, str]]]


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


def type_lookup(namespace: str, claims: ClaimLookup) -> Callable[[str], str | None]:
    """The type of a PlatformService by name in `namespace`, from the service-type index (handlers.py)."""

    def type_of(name: str) -> str | None:
        holders = claims(service_type_key(namespace, name))
        return holders[0][2] if holders else None

    return type_of


def service_type_key(namespace: str, name: str) -> tuple[str, str]:
    return ("service-type", f"{namespace}/{name}")
