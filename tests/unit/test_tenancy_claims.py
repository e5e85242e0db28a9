"""Who may hold what across namespaces: ingress hosts, Redis prefixes, shared exchanges, released queues.

The claims come from kopf's indexes in handlers.py (ingress_claims, queue_claims, tenancy_claims),
called here as kopf would call them, so that these tests also hold the indexes and the rules in
claims.py to the same keys. Every holder is (creationTimestamp, namespace, name); the oldest wins
(a Redis prefix: the service already granted it first, cache.prefix_order).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from fakes import provision_queues_with

from platform_operator import cache, handlers, messaging
from platform_operator.claims import (
    dropped_queues,
    host_conflict,
    ingress_conflict,
    prefix_conflict,
    unshared_exchanges,
)
from platform_operator.conditions import Condition
from platform_operator.model import API_VERSION, KIND, PlatformService
from platform_operator.rabbitmq import BrokerUnavailable, CleanupResult, ProvisionResult
from platform_operator.status import Outcome

T0, T1, T2, T3 = (f"2024-05-0{d}T10:00:00Z" for d in (1, 2, 3, 4))
INDEXES = (handlers.ingress_claims, handlers.queue_claims, handlers.tenancy_claims)


class Cluster:
    """PlatformServices as the indexes see them; called as a claim lookup: key -> holders."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
        self.asked: list[tuple[str, str]] = []
        self.bodies: dict[tuple[str, str], dict[str, Any]] = {}

    def order(self, svc: PlatformService) -> str:
        """How the service's prefix claim ranks, as reconcile computes it from its body."""
        return cache.prefix_order(self.bodies[(svc.namespace, svc.name)], svc.key_prefix)

    def add(
        self, created: str, namespace: str, name: str, status: dict[str, Any] | None = None, **spec: Any
    ) -> PlatformService:
        spec.setdefault("image", "registry.example/x:1")
        meta = {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "creationTimestamp": created}
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec, "status": status or {}}
        self.bodies[(namespace, name)] = body
        for index in INDEXES:
            for key, holder in (asyncio.run(index(namespace=namespace, name=name, body=body, meta=meta)) or {}).items():
                self.index[key].append(holder)
        return PlatformService.from_body(body)

    def __call__(self, key: tuple[str, str]) -> list[tuple[str, str, str]]:
        self.asked.append(key)
        return list(self.index.get(key, []))


def api(host: str, path: str = "/") -> dict[str, Any]:
    return {"type": "api", "ingress": {"host": host, "path": path}}


def cached(key_prefix: str | None = None) -> dict[str, Any]:
    return {"type": "worker", "redis": {} if key_prefix is None else {"keyPrefix": key_prefix}}


# --- ingress hosts: a host belongs to the namespace of its oldest claimant -------------------------------


def test_a_host_nobody_else_claims_is_free():
    cluster = Cluster()
    me = cluster.add(T0, "shop", "orders", **api("orders.example.com"))
    assert host_conflict(me, cluster) is None


def test_no_ingress_claims_no_host_and_looks_nothing_up():
    cluster = Cluster()
    cluster.add(T0, "team-b", "gw", **api("orders.example.com"))
    me = cluster.add(T1, "shop", "orders", type="api")
    assert host_conflict(me, cluster) is None
    assert cluster.asked == []


def test_another_service_of_the_same_namespace_may_share_the_host():
    cluster = Cluster()
    cluster.add(T0, "shop", "catalog", **api("shop.example.com", "/catalog"))
    me = cluster.add(T1, "shop", "orders", **api("shop.example.com", "/orders"))
    assert host_conflict(me, cluster) is None
    assert ingress_conflict(me, cluster) is None


@pytest.mark.parametrize("path", ["/", "/orders", "/other"])
def test_an_older_claim_of_another_namespace_refuses_the_host_on_every_path(path):
    cluster = Cluster()
    cluster.add(T0, "team-b", "gw", **api("shop.example.com", "/"))
    me = cluster.add(T1, "shop", "orders", **api("shop.example.com", path))
    assert host_conflict(me, cluster) == ("team-b", "gw")


def test_the_oldest_claimant_is_never_refused():
    cluster = Cluster()
    me = cluster.add(T0, "shop", "orders", **api("shop.example.com", "/orders"))
    late = cluster.add(T1, "team-b", "gw", **api("shop.example.com", "/gw"))
    assert host_conflict(me, cluster) is None
    assert host_conflict(late, cluster) == ("shop", "orders")


@pytest.mark.parametrize(
    ("claims", "conflict"),
    [
        # The index gives no order: the oldest claimant wins whatever the list order.
        ([(T1, "shop", "catalog"), (T0, "team-b", "gw")], ("team-b", "gw")),
        # The namespace's oldest claim makes the host its own, though another namespace came between.
        ([(T1, "team-b", "gw"), (T0, "shop", "catalog")], None),
        ([(T0, "team-b", "gw"), (T1, "team-c", "x")], ("team-b", "gw")),
    ],
    ids=["other-namespace-oldest", "own-namespace-oldest", "two-other-namespaces"],
)
def test_the_host_belongs_to_the_namespace_of_its_oldest_claimant(claims, conflict):
    cluster = Cluster()
    for created, namespace, name in claims:
        cluster.add(created, namespace, name, **api("shop.example.com", f"/{name}"))
    me = cluster.add(T2, "shop", "orders", **api("shop.example.com", "/orders"))
    assert host_conflict(me, cluster) == conflict


def test_a_shared_host_is_open_to_every_namespace():
    cluster = Cluster()
    cluster.add(T0, "team-b", "gw", **api("api.example.com", "/b"))
    me = cluster.add(T1, "shop", "orders", **api("api.example.com", "/orders"))
    assert host_conflict(me, cluster, ["api.example.com"]) is None
    assert host_conflict(me, cluster, ("other.example.com", "example.com")) == ("team-b", "gw")
    # The path within a shared host is still first come, first served.
    late = cluster.add(T2, "team-c", "x", **api("api.example.com", "/orders"))
    assert host_conflict(late, cluster, ["api.example.com"]) is None
    assert ingress_conflict(late, cluster) == ("shop", "orders")


@pytest.mark.parametrize(
    ("held", "wanted", "conflict"),
    [
        ("*.example.com", "orders.example.com", True),
        ("orders.example.com", "*.example.com", True),
        ("*.example.com", "*.example.com", True),
        # A wildcard covers one label only, as ingress controllers match it.
        ("*.example.com", "a.orders.example.com", False),
        ("*.example.com", "example.com", False),
        ("orders.example.com", "orders.example.org", False),
        ("orders.example.com", "shop.example.com", False),
    ],
)
def test_wildcard_hosts_overlap_the_hosts_they_cover(held, wanted, conflict):
    cluster = Cluster()
    cluster.add(T0, "team-b", "gw", **api(held))
    me = cluster.add(T1, "shop", "orders", **api(wanted))
    assert host_conflict(me, cluster) == (("team-b", "gw") if conflict else None)


# --- Redis prefixes: the later of two overlapping prefixes in a namespace is refused ----------------------


def test_a_prefix_alone_is_free():
    cluster = Cluster()
    me = cluster.add(T0, "shop", "orders", **cached())
    assert prefix_conflict(me, cluster.order(me), cluster) is None


@pytest.mark.parametrize(
    ("older", "mine", "reported"),
    [
        ("cache", "cache", "shop:cache"),
        ("cache", "cache:v2", "shop:cache"),  # the older prefix holds mine
        ("cache", "cache:v2:x", "shop:cache"),
        ("cache:v2", "cache", None),  # mine would hold the older one's keys
    ],
    ids=["equal", "under-older", "deep-under-older", "above-older"],
)
def test_an_overlapping_older_prefix_refuses_the_later_service(older, mine, reported):
    cluster = Cluster()
    first = cluster.add(T0, "shop", "first", **cached(older))
    me = cluster.add(T1, "shop", "orders", **cached(mine))
    conflict = prefix_conflict(me, cluster.order(me), cluster)
    assert conflict is not None
    assert conflict[:2] == ("shop", "first")
    if reported is not None:
        assert conflict[2] == reported
    else:  # a holder under this prefix is not named by its prefix, only placed under ours
        assert "shop:cache" in conflict[2]
    assert prefix_conflict(first, cluster.order(first), cluster) is None  # never the oldest


@pytest.mark.parametrize(
    ("older", "mine"),
    [("cache", "cache2"), ("cache", "cache-v2"), ("cache", "cache.v2"), ("a", "ab"), ("a:b", "a:c"), ("a:b", "a:bc")],
)
def test_sibling_prefixes_do_not_overlap(older, mine):
    cluster = Cluster()
    cluster.add(T0, "shop", "first", **cached(older))
    me = cluster.add(T1, "shop", "orders", **cached(mine))
    assert prefix_conflict(me, cluster.order(me), cluster) is None


@pytest.mark.parametrize("mine", ["cache", "billing", "billing:cache"])
def test_prefixes_of_other_namespaces_never_overlap(mine):
    cluster = Cluster()
    cluster.add(T0, "billing", "first", **cached("cache"))
    cluster.add(T0, "billing", "second", **cached())
    me = cluster.add(T1, "shop", "orders", **cached(mine))
    assert prefix_conflict(me, cluster.order(me), cluster) is None


def test_the_default_prefix_is_the_name_and_collides_with_a_keyprefix_of_that_name():
    cluster = Cluster()
    cluster.add(T0, "shop", "first", **cached("orders"))
    me = cluster.add(T1, "shop", "orders", **cached())
    assert prefix_conflict(me, cluster.order(me), cluster) == ("shop", "first", "shop:orders")


def test_the_oldest_of_the_older_holders_is_named():
    cluster = Cluster()
    cluster.add(T2, "shop", "middle", **cached("cache:v2"))  # added first: list order means nothing
    cluster.add(T1, "shop", "oldest", **cached("cache"))
    cluster.add(T0, "shop", "unrelated", **cached("sessions"))
    me = cluster.add(T3, "shop", "orders", **cached("cache"))
    assert prefix_conflict(me, cluster.order(me), cluster) == ("shop", "oldest", "shop:cache")


def test_younger_overlapping_services_never_refuse_an_older_one():
    cluster = Cluster()
    me = cluster.add(T0, "shop", "orders", **cached("cache"))
    cluster.add(T1, "shop", "same", **cached("cache"))
    cluster.add(T2, "shop", "under", **cached("cache:v2"))
    assert prefix_conflict(me, cluster.order(me), cluster) is None


def test_created_in_the_same_second_exactly_one_is_refused():
    cluster = Cluster()
    a = cluster.add(T0, "shop", "a", **cached("cache"))
    b = cluster.add(T0, "shop", "b", **cached("cache"))
    assert prefix_conflict(a, cluster.order(a), cluster) is None
    assert prefix_conflict(b, cluster.order(b), cluster) == ("shop", "a", "shop:cache")


def test_the_service_granted_the_prefix_keeps_it_against_one_created_in_the_same_second():
    cluster = Cluster()
    granted = {"redis": {"keyPrefix": "shop:orders-api", "user": "shop.orders-api"}}
    holder = cluster.add(T0, "shop", "orders-api", status=granted, **cached())
    nested = cluster.add(T0, "shop", "nested", **cached("orders-api:cache"))  # sorts first by name
    assert prefix_conflict(holder, cluster.order(holder), cluster) is None
    assert prefix_conflict(nested, cluster.order(nested), cluster) == ("shop", "orders-api", "shop:orders-api")


def test_a_grant_of_another_prefix_ranks_as_no_grant():
    cluster = Cluster()
    stale = {"redis": {"keyPrefix": "shop:old", "user": "shop.b"}}  # granted before its keyPrefix changed
    a = cluster.add(T1, "shop", "a", **cached("cache"))
    b = cluster.add(T0, "shop", "b", status=stale, **cached("cache"))
    assert prefix_conflict(b, cluster.order(b), cluster) is None  # the older one
    assert prefix_conflict(a, cluster.order(a), cluster) == ("shop", "b", "shop:cache")


def test_its_own_claims_are_no_conflict():
    cluster = Cluster()
    cluster.add(T0, "shop", "orders", **cached("cache"))
    me = cluster.add(T0, "shop", "orders", **cached("cache:v2"))  # the index still holds its old prefix
    assert prefix_conflict(me, cluster.order(me), cluster) is None


# --- exchanges of another namespace: bound to only when their owner shares them ----------------------------


def consumer(**consume: Any) -> dict[str, Any]:
    entry = {"queue": "q", "exchange": "orders", "exchangeNamespace": "demo", **consume}
    return {"type": "worker", "messaging": {"consumes": [entry]}}


def publisher(*shared_with: str, exchange: str = "orders") -> dict[str, Any]:
    return {"type": "api", "messaging": {"publishes": [{"name": exchange, "sharedWith": list(shared_with)}]}}


def test_an_exchange_nobody_publishes_to_is_not_shared():
    cluster = Cluster()
    me = cluster.add(T0, "shop", "orders", **consumer())
    assert list(unshared_exchanges(me, cluster)) == ["demo.orders"]
    assert "no publisher" in unshared_exchanges(me, cluster)["demo.orders"]


@pytest.mark.parametrize("shared_with", [(), ("billing",), ("shop2", "sho")])
def test_an_exchange_not_shared_with_the_namespace_is_refused(shared_with):
    cluster = Cluster()
    cluster.add(T0, "demo", "orders-api", **publisher(*shared_with))
    me = cluster.add(T1, "shop", "orders", **consumer())
    why = unshared_exchanges(me, cluster)
    assert list(why) == ["demo.orders"]
    assert "demo/orders-api" in why["demo.orders"]
    assert "shop" in why["demo.orders"]


def test_an_exchange_shared_with_the_namespace_is_bound():
    cluster = Cluster()
    cluster.add(T0, "demo", "orders-api", **publisher("billing", "shop"))
    me = cluster.add(T1, "shop", "orders", **consumer())
    assert unshared_exchanges(me, cluster) == {}
    topo = messaging.plan(me, unshared=frozenset(unshared_exchanges(me, cluster)))
    assert messaging.Binding("demo.orders", "shop.q", "#") in topo.bindings


def test_only_the_oldest_publisher_shares():
    cluster = Cluster()
    cluster.add(T0, "demo", "owner", **publisher())
    cluster.add(T1, "demo", "later", **publisher("shop"))  # shares what is not its own
    me = cluster.add(T2, "shop", "orders", **consumer())
    assert "demo/owner" in unshared_exchanges(me, cluster)["demo.orders"]


def test_the_oldest_publisher_sharing_is_enough():
    cluster = Cluster()
    cluster.add(T1, "demo", "later", **publisher())
    cluster.add(T0, "demo", "owner", **publisher("shop"))
    me = cluster.add(T2, "shop", "orders", **consumer())
    assert unshared_exchanges(me, cluster) == {}


def test_a_publisher_of_the_same_exchange_name_in_another_namespace_shares_nothing():
    cluster = Cluster()
    cluster.add(T0, "billing", "orders-api", **publisher("shop"))  # billing.orders, not demo.orders
    me = cluster.add(T1, "shop", "orders", **consumer())
    assert list(unshared_exchanges(me, cluster)) == ["demo.orders"]


@pytest.mark.parametrize("exchange_namespace", [None, "shop"])
def test_an_exchange_of_its_own_namespace_needs_no_share_and_looks_nothing_up(exchange_namespace):
    cluster = Cluster()
    me = cluster.add(T0, "shop", "orders", **consumer(exchangeNamespace=exchange_namespace))
    assert unshared_exchanges(me, cluster) == {}
    assert cluster.asked == []


def test_an_unshared_exchange_plans_the_queue_without_its_binding():
    cluster = Cluster()
    cluster.add(T0, "demo", "orders-api", **publisher())
    me = cluster.add(T1, "shop", "orders", **consumer())
    topo = messaging.plan(me, unshared=frozenset(unshared_exchanges(me, cluster)))
    assert "shop.q" in topo.consumed
    assert all(b.exchange != "demo.orders" for b in topo.bindings)


# --- queues the spec no longer asks for -------------------------------------------------------------------


def status_listing(*names: str) -> dict[str, Any]:
    return {"queues": [{"name": n, "messages": 0, "consumers": 0} for n in names]}


def worker_consuming(*queues: str) -> dict[str, Any]:
    return {"type": "worker", "messaging": {"consumes": [{"queue": q, "exchange": "orders"} for q in queues]}}


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster()
    c.add(T0, "shop", "other", **worker_consuming("taken"))
    c.add(T0, "demo", "victim", **worker_consuming("old"))
    return c


@pytest.mark.parametrize(
    ("listed", "dropped"),
    [
        ("shop.old", True),
        ("shop.old.dlq", True),
        ("shop.old.retry", True),
        ("shop.q", False),  # still asked for
        ("shop.q.dlq", False),
        ("shop.q.retry", False),  # the older retry queue of a queue still consumed: retired, not released
        ("shop.q.retry.30s", False),
        ("shop.taken", False),  # another service of the namespace holds it now
        ("shop.taken.dlq", False),
        ("demo.old", False),  # another namespace's name is never ours to release
        ("demo.q", False),
        ("old", False),  # a name of no namespace (before names were namespaced)
        ("", False),
    ],
)
def test_dropped_queues(cluster, listed, dropped):
    me = cluster.add(T1, "shop", "orders", **worker_consuming("q"))
    out = dropped_queues(me, messaging.plan(me), status_listing(listed), cluster)
    assert out == ([listed] if dropped else [])


def test_dropped_queues_are_sorted_and_skip_entries_without_a_name(cluster):
    me = cluster.add(T1, "shop", "orders", **worker_consuming("q"))
    previous = {"queues": [{"name": "shop.z"}, {"messages": 3}, {"name": "shop.a"}, {"name": "shop.q"}]}
    assert dropped_queues(me, messaging.plan(me), previous, cluster) == ["shop.a", "shop.z"]


def test_a_queue_only_it_still_holds_in_the_index_is_dropped():
    cluster = Cluster()
    cluster.add(T0, "shop", "orders", **worker_consuming("old"))  # the index before the spec changed
    me = PlatformService.from_body(
        {"metadata": {"name": "orders", "namespace": "shop"}, "spec": {**worker_consuming("q"), "image": "x"}}
    )
    assert dropped_queues(me, messaging.plan(me), status_listing("shop.old"), cluster) == ["shop.old"]


@pytest.mark.parametrize("previous", [{}, {"queues": None}, {"queues": []}])
def test_nothing_listed_nothing_dropped(cluster, previous):
    me = cluster.add(T1, "shop", "orders", **worker_consuming("q"))
    assert dropped_queues(me, messaging.plan(me), previous, cluster) == []


# --- provision_queues releases what is dropped (a stand-in broker: no I/O) ---------------------------------


class FakeRabbit:
    def __init__(
        self, *, release_fails: bool = False, result: ProvisionResult | None = None, messages: int = 0
    ) -> None:
        self.release_fails = release_fails
        self.result = result or ProvisionResult()
        self.released: list[tuple[list[str], bool, bool]] = []
        self.provisioned: list[messaging.Topology] = []

    async def release_queues(self, queues: list[str], *, delete: bool, force: bool) -> CleanupResult:
        if self.release_fails:
            raise BrokerUnavailable("RabbitMQ management API at http://rabbitmq:15672 unreachable (ConnectError)")
        self.released.append((list(queues), delete, force))
        return CleanupResult(deleted=[f"queue {q}" for q in queues] if delete else [], kept=[] if delete else queues)

    async def provision(self, topo: messaging.Topology, password: str) -> ProvisionResult:
        self.provisioned.append(topo)
        return self.result

    async def queue_stats(self, names: Any) -> list[dict[str, Any]]:
        return [{"name": n, "messages": 0, "consumers": 0} for n in names]


def provision(
    svc: PlatformService, rabbit: FakeRabbit, previous: dict[str, Any], claims: Any = lambda _: []
) -> tuple[Condition, list[dict[str, Any]], Outcome, list[tuple[str, str, str]]]:
    said: list[tuple[str, str, str]] = []
    cond, queues, outcome = provision_queues_with(rabbit, svc, previous, claims, said)
    return cond, queues, outcome, said


@pytest.mark.parametrize(
    ("policy", "with_messages", "delete", "force"),
    [
        ("Retain", False, False, False),  # unbound, kept
        ("Delete", False, True, False),  # deleted when empty
        ("Delete", True, True, True),
    ],
    ids=["retain", "delete", "delete-forced"],
)
def test_a_dropped_queue_is_released_as_the_deletion_policy_says(make_svc, policy, with_messages, delete, force):
    spec = worker_consuming("q")
    spec["messaging"]["deleteQueuesWithMessages"] = with_messages
    svc = make_svc(**spec, deletionPolicy=policy)
    rabbit = FakeRabbit()
    cond, queues, outcome, said = provision(svc, rabbit, status_listing("shop.q", "shop.old", "demo.old"))
    assert rabbit.released == [(["shop.old"], delete, force)]
    assert "rabbitmq released shop.old" in outcome.written
    assert [s[1] for s in said] == ["QueuesReleased"]
    assert (cond.status, cond.reason) == ("True", "Provisioned")
    assert {q["name"] for q in queues} == set(messaging.plan(svc).queues_in_status)


def test_nothing_dropped_nothing_released(make_svc):
    rabbit = FakeRabbit()
    svc = make_svc(**worker_consuming("q"))
    provision(svc, rabbit, status_listing(*messaging.plan(svc).queues_in_status))
    assert rabbit.released == []
    assert len(rabbit.provisioned) == 1


def test_a_release_the_broker_fails_keeps_the_listing_for_the_next_try(make_svc):
    rabbit = FakeRabbit(release_fails=True)
    previous = status_listing("shop.q", "shop.old")
    cond, queues, outcome, _ = provision(make_svc(**worker_consuming("q")), rabbit, previous)
    assert (cond.status, cond.reason) == ("False", "RabbitMQUnavailable")
    assert queues == previous["queues"]
    assert outcome.retry and rabbit.provisioned == []


def test_dropping_all_messaging_releases_and_needs_nothing_more(make_svc):
    rabbit = FakeRabbit()
    cond, queues, _, _ = provision(make_svc(type="worker"), rabbit, status_listing("shop.q", "shop.q.dlq"))
    assert rabbit.released == [(["shop.q", "shop.q.dlq"], False, False)]
    assert (cond.status, cond.reason, queues) == ("True", "NotRequired", [])
    assert rabbit.provisioned == []


def test_a_shared_exchange_not_declared_yet_is_waited_for(make_svc):
    rabbit = FakeRabbit(result=ProvisionResult(missing=["demo.orders"]))
    cond, queues, outcome, _ = provision(make_svc(**consumer()), rabbit, {})
    assert (cond.status, cond.reason) == ("False", "ExchangeNotFound")
    assert "demo.orders" in cond.message
    assert any("demo.orders" in r for r in outcome.retry)
    assert {q["name"] for q in queues} == {"shop.q", "shop.q.dlq", "shop.q.retry.10s"}


def route(cluster: Cluster, created: str, namespace: str, owner: str, host: str) -> None:
    """A live Ingress the operator made for `owner`, as the live_ingress_hosts index sees it."""
    meta = {
        "name": owner,
        "namespace": namespace,
        "creationTimestamp": created,
        "ownerReferences": [{"kind": "PlatformService", "name": owner, "controller": True}],
    }
    spec = {"rules": [{"host": host}]}
    for key, holder in asyncio.run(handlers.live_ingress_hosts(namespace=namespace, meta=meta, spec=spec)).items():
        cluster.index[key].append(holder)


def test_an_older_service_switching_to_a_host_another_namespace_routes_does_not_take_it():
    cluster = Cluster()
    cluster.add(T2, "shop", "orders", **api("shop.example.com"))
    route(cluster, T2, "shop", "orders", "shop.example.com")
    # Created before the shop's service, it changes its host to the shop's.
    thief = cluster.add(T0, "team-b", "gw", **api("shop.example.com", "/x"))
    owner = cluster.add(T2, "shop", "orders", **api("shop.example.com"))
    assert host_conflict(thief, cluster) == ("shop", "orders")
    assert host_conflict(owner, cluster) is None


def test_a_live_ingress_for_a_host_under_a_wildcard_holds_the_wildcard_off():
    cluster = Cluster()
    route(cluster, T1, "shop", "orders", "orders.example.com")
    wild = cluster.add(T0, "team-b", "gw", **api("*.example.com"))
    assert host_conflict(wild, cluster) == ("shop", "orders")
