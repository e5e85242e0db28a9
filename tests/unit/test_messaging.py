"""The RabbitMQ topology a PlatformService turns into: exchanges, queues, bindings, policies, permissions.

Every name on the broker lies under the service's namespace (`<namespace>.<name>`); no permission reaches
another namespace's names, and configure is never granted (the operator declares everything)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from platform_operator import messaging
from platform_operator.messaging import Binding, Exchange, Permissions, Policy, Queue, Topology
from platform_operator.model import PlatformService


def consume(queue: str = "q", exchange: str = "orders", **extra: Any) -> dict[str, Any]:
    return {"queue": queue, "exchange": exchange, **extra}


def worker(make_kind, *consumes: dict[str, Any], publishes: tuple[dict[str, Any], ...] = (), **kw: Any):
    messaging_spec: dict[str, Any] = {}
    if consumes:
        messaging_spec["consumes"] = list(consumes)
    if publishes:
        messaging_spec["publishes"] = list(publishes)
    return make_kind("worker", messaging=messaging_spec, **kw)


def exchanges(topo: Topology) -> dict[str, str]:
    names = [e.name for e in topo.exchanges]
    assert len(names) == len(set(names)), f"duplicate exchanges: {names}"
    return {e.name: e.type for e in topo.exchanges}


def queue_names(topo: Topology) -> list[str]:
    return [q.name for q in topo.queues]


def policies(topo: Topology) -> dict[str, dict[str, object]]:
    return {p.queue: p.definition for p in topo.policies}


def allowed(regex: str, name: str) -> bool:
    return re.fullmatch(regex, name) is not None


# --- one consumed queue with the defaults ----------------------------------------------------------
# make_kind's services live in namespace shop: every name a spec gives is shop.<name> on the broker.


def test_default_consumer_exchanges(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    assert exchanges(topo) == {"shop.orders": "topic", "shop.q.dlx": "fanout", "shop.q.retry": "fanout"}
    assert topo.foreign_exchanges == ()


def test_default_consumer_queues(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    assert sorted(queue_names(topo)) == ["shop.q", "shop.q.dlq", "shop.q.retry.10s"]
    assert all(isinstance(q, Queue) for q in topo.queues)
    assert topo.queues_in_status == tuple(queue_names(topo))
    assert topo.consumed == ("shop.q",)
    assert topo.empty is False


def test_default_consumer_bindings(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    assert sorted(topo.bindings, key=lambda b: b.exchange) == [
        Binding("shop.orders", "shop.q", "#"),
        Binding("shop.q.dlx", "shop.q.dlq", ""),
        Binding("shop.q.retry", "shop.q.retry.10s", ""),
    ]


def test_one_binding_per_routing_key(make_kind):
    topo = messaging.plan(worker(make_kind, consume(routingKeys=["order.created", "order.*"])))
    main = [b for b in topo.bindings if b.queue == "shop.q"]
    assert main == [Binding("shop.orders", "shop.q", "order.created"), Binding("shop.orders", "shop.q", "order.*")]


def test_default_consumer_needs_no_policy(make_kind):
    # What never changes is a queue argument: RabbitMQ matches every policy against every queue.
    topo = messaging.plan(worker(make_kind, consume()))
    assert topo.policies == ()


def test_default_consumer_queue_arguments(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    args = {q.name: q.args for q in topo.queues}
    assert args == {
        "shop.q": {"x-dead-letter-exchange": "shop.q.dlx"},
        "shop.q.dlq": {},
        "shop.q.retry.10s": {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "shop.q",  # back to the main queue, by its broker name
            "x-message-ttl": 10_000,
        },
    }


def test_main_policy_carries_ttl_in_ms_and_max_length_only_when_set(make_kind):
    topo = messaging.plan(worker(make_kind, consume(messageTTLSeconds=60, maxLength=500)))
    assert policies(topo) == {"shop.q": {"message-ttl": 60_000, "max-length": 500}}


def test_a_retry_delay_is_a_retry_queue_of_its_own(make_kind):
    topo = messaging.plan(worker(make_kind, consume(retryDelaySeconds=45)))
    retry = next(q for q in topo.queues if q.name.startswith("shop.q.retry"))
    assert retry.name == "shop.q.retry.45s"
    assert retry.args["x-message-ttl"] == 45_000
    assert Binding("shop.q.retry", "shop.q.retry.45s", "") in topo.bindings
    assert messaging.retried_queue("shop.q.retry.45s") == "shop.q"
    assert messaging.retried_queue("shop.q.retry") == "shop.q"  # the older name, retired when met
    assert messaging.retried_queue("shop.q.dlq") is None


def test_policy_patterns_match_exactly_their_queue(make_kind):
    topo = messaging.plan(worker(make_kind, consume(maxLength=3)))
    by_queue = {p.queue: p for p in topo.policies}
    assert by_queue["shop.q"].pattern == r"^shop\.q$"
    assert re.search(by_queue["shop.q"].pattern, "shop.q.retry.10s") is None
    assert re.search(by_queue["shop.q"].pattern, "q") is None
    assert re.search(by_queue["shop.q"].pattern, "shopXq") is None


def test_a_queue_declared_without_arguments_keeps_them_in_its_policy(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    by_name = {q.name: q for q in topo.queues}
    assert messaging.legacy_policy(by_name["shop.q"]) == {"dead-letter-exchange": "shop.q.dlx"}
    assert messaging.legacy_policy(by_name["shop.q.dlq"]) == {}
    assert messaging.legacy_policy(by_name["shop.q.retry.10s"]) == {
        "dead-letter-exchange": "",
        "dead-letter-routing-key": "shop.q",
        "message-ttl": 10_000,
    }


# --- deadLetter / maxRetries switches ----------------------------------------------------------------


def test_dead_letter_false_drops_dlx_and_dlq_and_keeps_the_argument(make_kind):
    topo = messaging.plan(worker(make_kind, consume(deadLetter=False)))
    assert exchanges(topo) == {"shop.orders": "topic", "shop.q.retry": "fanout"}
    assert sorted(queue_names(topo)) == ["shop.q", "shop.q.retry.10s"]
    assert sorted(topo.bindings, key=lambda b: b.exchange) == [
        Binding("shop.orders", "shop.q", "#"),
        Binding("shop.q.retry", "shop.q.retry.10s", ""),
    ]
    # The argument stays (arguments never change): Q.dlx does not exist, so RabbitMQ drops what it
    # would route, and turning deadLetter on again later only declares the exchange and its queue.
    assert topo.queues[0].args == {"x-dead-letter-exchange": "shop.q.dlx"}
    assert topo.policies == ()


def test_dead_letter_false_keeps_ttl_and_max_length(make_kind):
    topo = messaging.plan(worker(make_kind, consume(deadLetter=False, messageTTLSeconds=5, maxLength=7)))
    assert policies(topo)["shop.q"] == {"message-ttl": 5000, "max-length": 7}


def test_max_retries_zero_removes_the_retry_path(make_kind):
    topo = messaging.plan(worker(make_kind, consume(maxRetries=0)))
    assert exchanges(topo) == {"shop.orders": "topic", "shop.q.dlx": "fanout"}
    assert sorted(queue_names(topo)) == ["shop.q", "shop.q.dlq"]
    assert sorted(topo.bindings, key=lambda b: b.exchange) == [
        Binding("shop.orders", "shop.q", "#"),
        Binding("shop.q.dlx", "shop.q.dlq", ""),
    ]
    assert topo.policies == ()
    assert topo.permissions == Permissions(configure="^$", write="^$", read=r"^(shop\.q|shop\.q\.dlq)$")


def test_no_dead_letter_and_no_retries_is_just_the_queue(make_kind):
    topo = messaging.plan(worker(make_kind, consume(deadLetter=False, maxRetries=0)))
    assert exchanges(topo) == {"shop.orders": "topic"}
    assert queue_names(topo) == ["shop.q"]
    assert topo.bindings == (Binding("shop.orders", "shop.q", "#"),)
    assert topo.policies == ()
    assert topo.permissions == Permissions(configure="^$", write="^$", read=r"^(shop\.q)$")


# --- exchange types -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["topic", "direct", "fanout"])
def test_a_published_exchange_keeps_its_declared_type(make_kind, kind):
    topo = messaging.plan(worker(make_kind, publishes=({"name": "events", "type": kind},)))
    assert topo.exchanges == (Exchange("shop.events", kind, typed=True),)
    assert topo.queues == ()
    assert topo.empty is False


def test_published_exchange_defaults_to_topic_and_is_typed(make_kind):
    topo = messaging.plan(worker(make_kind, publishes=({"name": "events"},)))
    # typed even as topic: a live exchange of another type is a conflict, whatever the type asked.
    assert topo.exchanges == (Exchange("shop.events", "topic", typed=True),)


def test_an_exchange_only_consumed_from_is_declared_topic_and_untyped(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    by_name = {e.name: e for e in topo.exchanges}
    assert by_name["shop.orders"] == Exchange("shop.orders", "topic", typed=False)
    # The dead-letter and retry exchanges are the service's own: their type is not negotiable.
    assert by_name["shop.q.dlx"].typed and by_name["shop.q.retry"].typed


def test_consuming_from_an_exchange_it_publishes_keeps_the_published_type(make_kind):
    svc = worker(make_kind, consume(exchange="orders"), publishes=({"name": "orders", "type": "direct"},))
    by_name = {e.name: e for e in messaging.plan(svc).exchanges}
    assert by_name["shop.orders"] == Exchange("shop.orders", "direct", typed=True)


def test_an_exchange_namespace_equal_to_its_own_is_not_foreign(make_kind):
    svc = worker(make_kind, consume(exchangeNamespace="shop"))
    topo = messaging.plan(svc)
    assert not messaging.is_foreign(svc, svc.spec.messaging.consumes[0])
    assert exchanges(topo)["shop.orders"] == "topic"
    assert topo.foreign_exchanges == ()


# --- another namespace's exchange (exchangeNamespace) ------------------------------------------------------


def test_a_foreign_exchange_is_bound_to_but_never_declared(make_kind):
    svc = worker(make_kind, consume(exchangeNamespace="demo", routingKeys=["order.*"]))
    topo = messaging.plan(svc)
    assert messaging.exchange_of(svc, svc.spec.messaging.consumes[0]) == "demo.orders"
    assert topo.foreign_exchanges == ("demo.orders",)
    assert "demo.orders" not in exchanges(topo)
    assert "shop.orders" not in exchanges(topo)
    assert Binding("demo.orders", "shop.q", "order.*") in topo.bindings
    # Binding is the operator's business: the service's user may neither read nor write the exchange.
    for which in ("configure", "write", "read"):
        assert not allowed(getattr(topo.permissions, which), "demo.orders")


def test_an_unshared_foreign_exchange_leaves_the_queue_declared_and_unbound(make_kind):
    svc = worker(make_kind, consume(exchangeNamespace="demo"), consume("r", "events"))
    topo = messaging.plan(svc, unshared=frozenset({"demo.orders"}))
    assert {"shop.q", "shop.q.dlq", "shop.q.retry.10s", "shop.r"} <= set(queue_names(topo))
    assert [b for b in topo.bindings if b.exchange == "demo.orders"] == []
    # The rest of the path is the service's own, and stays.
    assert Binding("shop.q.dlx", "shop.q.dlq", "") in topo.bindings
    assert Binding("shop.q.retry", "shop.q.retry.10s", "") in topo.bindings
    assert Binding("shop.events", "shop.r", "#") in topo.bindings
    assert topo.foreign_exchanges == ()  # not waited for either: nothing of it is asked of the broker
    assert messaging.plan(svc).foreign_exchanges == ("demo.orders",)
    assert topo.permissions == messaging.plan(svc).permissions


def test_unshared_names_only_the_foreign_exchanges_it_lists(make_kind):
    svc = worker(make_kind, consume(exchangeNamespace="demo"), consume("r", "orders", exchangeNamespace="billing"))
    topo = messaging.plan(svc, unshared=frozenset({"billing.orders"}))
    assert topo.foreign_exchanges == ("demo.orders",)
    assert {b.exchange for b in topo.bindings if b.exchange.startswith(("demo.", "billing."))} == {"demo.orders"}


# --- permissions ------------------------------------------------------------------------------------------


def test_default_consumer_permission_regexes(make_kind):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert topo.permissions == Permissions(
        configure="^$",
        write=r"^(shop\.events|shop\.q\.retry)$",
        read=r"^(shop\.q|shop\.q\.dlq)$",
    )


@pytest.mark.parametrize(
    "spec",
    [
        {"consumes": [consume()], "publishes": [{"name": "events"}]},
        {"publishes": [{"name": "events", "type": "fanout"}]},
        {"consumes": [consume(deadLetter=False, maxRetries=0)]},
        {"consumes": [consume(exchangeNamespace="demo")]},
    ],
    ids=["consumes-and-publishes", "publishes-only", "bare-queue", "foreign-exchange"],
)
@pytest.mark.parametrize("name", ["shop.q", "shop.q.dlq", "shop.q.dlx", "shop.q.retry", "shop.events", "shop.orders"])
def test_configure_grants_nothing_the_operator_declares_everything(make_kind, spec, name):
    topo = messaging.plan(make_kind("worker", messaging=spec))
    assert topo.permissions.configure == "^$"
    assert not allowed(topo.permissions.configure, name)
    assert not allowed(topo.permissions.configure, "amq.default")


@pytest.mark.parametrize(
    "name",
    [
        "other.q",
        "q",
        "shop.other.q",
        "shop.q.dlq.extra",
        "shop.qX",
        "shop.q.dlqX",
        "Xshop.q",
        "shopXq",
        "shop.q.retry2",
        "shop.q-dlq",
        "shop.events2",
        "shop.orders",
        "events",
        "billing.q",
        "billing.events",
        "shop.q|billing.q",
    ],
)
@pytest.mark.parametrize("which", ["configure", "write", "read"])
def test_no_permission_reaches_another_services_names(make_kind, which, name):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert not allowed(getattr(topo.permissions, which), name)


@pytest.mark.parametrize(
    ("name", "readable"),
    [("shop.q", True), ("shop.q.dlq", True), ("shop.q.retry", False), ("shop.q.dlx", False), ("q", False)],
)
def test_read_covers_the_queue_and_its_dead_letter_queue_only(make_kind, name, readable):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert allowed(topo.permissions.read, name) is readable
    assert not allowed(topo.permissions.read, "shop.events")


@pytest.mark.parametrize(
    ("name", "writable"),
    [
        ("shop.events", True),
        ("shop.q.retry", True),
        # Dead-lettering is the broker's doing: the service needs no write on its dead-letter exchange.
        ("shop.q.dlx", False),
        ("shop.q", False),
        ("shop.q.dlq", False),
        ("shop.orders", False),  # consumed from, not published to
        ("events", False),
    ],
)
def test_write_covers_published_exchanges_and_its_retry_exchanges(make_kind, name, writable):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert allowed(topo.permissions.write, name) is writable


@pytest.mark.parametrize("kind", ["api", "worker", "bot-polling", "data"])
def test_no_messaging_means_no_permission_and_an_empty_topology(make_kind, kind):
    topo = messaging.plan(make_kind(kind))
    assert topo.permissions == Permissions("^$", "^$", "^$")
    assert topo.empty is True
    assert (topo.exchanges, topo.queues, topo.bindings, topo.policies, topo.consumed) == ((), (), (), (), ())
    assert topo.foreign_exchanges == ()
    assert topo.user == "shop.orders"
    for regex in (topo.permissions.configure, topo.permissions.write, topo.permissions.read):
        assert allowed(regex, "")  # ^$ grants nothing but the empty name
        assert not allowed(regex, "q")
        assert not allowed(regex, "amq.default")


def test_names_with_regex_metacharacters_are_escaped(make_kind):
    svc = worker(make_kind, consume(queue="a.b-c_d", exchange="x"), publishes=({"name": "ev.v1"},))
    topo = messaging.plan(svc)
    read = topo.permissions.read
    assert read == r"^(shop\.a\.b\-c_d|shop\.a\.b\-c_d\.dlq)$"
    assert allowed(read, "shop.a.b-c_d")
    assert allowed(read, "shop.a.b-c_d.dlq")
    assert not allowed(read, "shopXa.b-c_d")  # the namespace's dot is literal too
    assert not allowed(read, "shop.aXb-c_d")  # the dot is literal, not "any character"
    assert not allowed(read, "shop.a.b-c_dXdlq")
    assert allowed(topo.permissions.write, "shop.ev.v1")
    assert not allowed(topo.permissions.write, "shop.evXv1")
    assert not allowed(topo.permissions.write, "shopXev.v1")


def test_two_consumed_queues_share_no_names_and_are_all_covered(make_kind):
    svc = worker(make_kind, consume("a", "orders"), consume("b", "payments", maxRetries=0))
    topo = messaging.plan(svc)
    assert exchanges(topo) == {
        "shop.orders": "topic",
        "shop.payments": "topic",
        "shop.a.dlx": "fanout",
        "shop.a.retry": "fanout",
        "shop.b.dlx": "fanout",
    }
    assert sorted(queue_names(topo)) == ["shop.a", "shop.a.dlq", "shop.a.retry.10s", "shop.b", "shop.b.dlq"]
    assert topo.consumed == ("shop.a", "shop.b")
    assert topo.permissions.read == r"^(shop\.a|shop\.a\.dlq|shop\.b|shop\.b\.dlq)$"
    assert topo.permissions.write == r"^(shop\.a\.retry)$"
    assert topo.permissions.configure == "^$"


def test_the_broker_user_is_namespace_dot_name(make_kind):
    assert messaging.plan(worker(make_kind, consume())).user == "shop.orders"
    assert messaging.user_name(make_kind("worker")) == "shop.orders"


# --- tenancy: another namespace's names are out of reach ---------------------------------------------------

# A namespace `evil` asks, in its own spec, for every name namespace `demo` uses.
DEMO_NAMES = [
    "demo.orders",
    "demo.notifier.orders",
    "demo.notifier.orders.dlx",
    "demo.notifier.orders.dlq",
    "demo.notifier.orders.retry",
    "demo.spy",
    "notifier.orders",
    "orders",
]


def evil(make_svc, **consume_extra: Any):
    return make_svc(
        type="worker",
        name="spy",
        namespace="evil",
        messaging={
            "publishes": [{"name": "notifier.orders"}, {"name": "orders"}],
            "consumes": [consume("spy", "orders", routingKeys=["#"], **consume_extra)],
        },
    )


@pytest.mark.parametrize("name", DEMO_NAMES)
@pytest.mark.parametrize("which", ["configure", "write", "read"])
def test_no_permission_of_one_namespace_covers_another_namespaces_names(make_svc, which, name):
    topo = messaging.plan(evil(make_svc))
    assert not allowed(getattr(topo.permissions, which), name)


def test_a_namespace_asking_for_anothers_names_gets_them_under_its_own(make_svc):
    topo = messaging.plan(evil(make_svc))
    assert exchanges(topo) == {
        "evil.notifier.orders": "topic",
        "evil.orders": "topic",
        "evil.spy.dlx": "fanout",
        "evil.spy.retry": "fanout",
    }
    assert sorted(queue_names(topo)) == ["evil.spy", "evil.spy.dlq", "evil.spy.retry.10s"]
    assert {b.exchange for b in topo.bindings} == {"evil.orders", "evil.spy.dlx", "evil.spy.retry"}
    assert allowed(topo.permissions.write, "evil.orders")
    assert allowed(topo.permissions.write, "evil.notifier.orders")
    names = {e.name for e in topo.exchanges} | set(queue_names(topo)) | {p.queue for p in topo.policies}
    assert {messaging.owner_namespace(n) for n in names} == {"evil"}


def test_binding_to_a_foreign_exchange_grants_nothing_on_it(make_svc):
    topo = messaging.plan(evil(make_svc, exchangeNamespace="demo"))
    assert topo.foreign_exchanges == ("demo.orders",)
    for which in ("configure", "write", "read"):
        for name in DEMO_NAMES:
            assert not allowed(getattr(topo.permissions, which), name)


# Namespaces are DNS labels; queue and exchange names are what the CRD accepts.
NAMESPACES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)


@given(namespace=NAMESPACES, name=NAMES)
def test_broker_name_and_owner_namespace_round_trip(namespace, name):
    full = messaging.broker_name(namespace, name)
    assert messaging.owner_namespace(full) == namespace
    assert full == f"{namespace}.{name}"
    assert full.removeprefix(namespace + ".") == name
    # The dead-letter and retry names of a queue stay in its namespace.
    for derived in (messaging.dlx_name(full), messaging.dlq_name(full), messaging.retry_name(full)):
        assert messaging.owner_namespace(derived) == namespace


@given(a=st.tuples(NAMESPACES, NAMES), b=st.tuples(NAMESPACES, NAMES))
def test_broker_names_of_different_namespaces_never_meet(a, b):
    assert (messaging.broker_name(*a) == messaging.broker_name(*b)) == (a == b)


@settings(max_examples=50, deadline=None)
@given(
    namespace=NAMESPACES,
    other=NAMESPACES,
    queues=st.lists(NAMES, min_size=1, max_size=3, unique=True),
    published=st.lists(NAMES, max_size=3, unique=True),
    probe=NAMES,
)
def test_no_spec_reaches_a_name_of_another_namespace(namespace, other, queues, published, probe):
    assume(namespace != other)
    svc = PlatformService.from_body(
        {
            "metadata": {"name": "svc", "namespace": namespace},
            "spec": {
                "type": "worker",
                "image": "x",
                "messaging": {
                    "consumes": [consume(q, q) for q in queues],
                    "publishes": [{"name": p} for p in published],
                },
            },
        }
    )
    topo = messaging.plan(svc)
    assert topo.permissions.configure == "^$"
    # Whatever the other namespace calls its names (the same ones included), none is granted.
    for name in [*queues, *published, probe]:
        for full in (messaging.broker_name(other, name), messaging.dlq_name(messaging.broker_name(other, name))):
            for which in ("configure", "write", "read"):
                assert not allowed(getattr(topo.permissions, which), full)
    # And everything it declares is its own namespace's.
    for name in [e.name for e in topo.exchanges] + queue_names(topo):
        assert messaging.owner_namespace(name) == namespace


# --- policy names ---------------------------------------------------------------------------------------


def test_policy_names_are_unique_and_prefixed_by_service(make_kind):
    svc = worker(make_kind, consume("a", messageTTLSeconds=1), consume("b", maxLength=5), consume("c"))
    topo = messaging.plan(svc)
    names = [p.name for p in topo.policies]
    assert names == ["platform/shop/orders/shop.a", "platform/shop/orders/shop.b"]  # none for c: nothing set
    assert len(set(names)) == len(names)
    assert all(isinstance(p, Policy) for p in topo.policies)
    assert all(n.startswith(messaging.policy_prefix(topo.user)) for n in names)


def test_policy_names_differ_between_services_with_the_same_queue(make_svc):
    spec = {"type": "worker", "messaging": {"consumes": [consume(maxLength=10)]}}
    one = messaging.plan(make_svc(name="orders", namespace="shop", **spec))
    other = messaging.plan(make_svc(name="orders", namespace="billing", **spec))
    assert one.policies and other.policies
    assert {p.name for p in one.policies}.isdisjoint({p.name for p in other.policies})
    assert all(p.name.startswith("platform/billing/orders/") for p in other.policies)


def test_policy_name_format(make_kind):
    assert messaging.policy_name(make_kind("worker"), "shop.q.retry") == "platform/shop/orders/shop.q.retry"


def test_policy_prefix_of_a_user():
    assert messaging.policy_prefix("shop.orders") == "platform/shop/orders/"
    # The user is <namespace>.<name>: only the first dot separates them.
    assert messaging.policy_prefix("shop.orders.v2") == "platform/shop/orders.v2/"


@pytest.mark.parametrize(("one", "other"), [("orders", "orders.v2"), ("orders", "orders-v2"), ("orders", "orders2")])
def test_services_whose_names_share_a_start_share_no_policy_prefix(make_svc, one, other):
    spec = {"type": "worker", "messaging": {"consumes": [consume(messageTTLSeconds=1)]}}
    a, b = (messaging.plan(make_svc(name=n, namespace="shop", **spec)) for n in (one, other))
    assert a.policies and b.policies
    assert not any(p.name.startswith(messaging.policy_prefix(a.user)) for p in b.policies)
    assert not any(p.name.startswith(messaging.policy_prefix(b.user)) for p in a.policies)


def test_policy_prefix_of_one_namespace_misses_a_namespace_starting_alike(make_svc):
    spec = {"type": "worker", "messaging": {"consumes": [consume(messageTTLSeconds=1)]}}
    shop = messaging.plan(make_svc(name="orders", namespace="shop", **spec))
    shop2 = messaging.plan(make_svc(name="orders", namespace="shop2", **spec))
    assert not any(p.name.startswith(messaging.policy_prefix(shop.user)) for p in shop2.policies)


# --- what the consumer is told (RABBITMQ_CONSUMES, RABBITMQ_PUBLISHES) -----------------------------------------


def test_consumer_settings_defaults(make_kind):
    out = messaging.consumer_settings(worker(make_kind, consume()))
    assert json.loads(out) == [
        {
            "queue": "shop.q",
            "prefetch": 10,
            "maxRetries": 3,
            "retryExchange": "shop.q.retry",
            "deadLetterQueue": "shop.q.dlq",
            "retryHeader": "x-retry-count",
        }
    ]
    assert " " not in out  # compact: it goes into an env var


def test_consumer_settings_without_retry_or_dead_letter(make_kind):
    svc = worker(make_kind, consume(prefetch=50, maxRetries=0, deadLetter=False))
    assert json.loads(messaging.consumer_settings(svc)) == [
        {
            "queue": "shop.q",
            "prefetch": 50,
            "maxRetries": 0,
            "retryExchange": "",
            "deadLetterQueue": "",
            "retryHeader": "x-retry-count",
        }
    ]


def test_consumer_settings_follow_the_spec_order(make_kind):
    svc = worker(make_kind, consume("b"), consume("a", maxRetries=5))
    out = json.loads(messaging.consumer_settings(svc))
    assert [(c["queue"], c["maxRetries"], c["retryExchange"]) for c in out] == [
        ("shop.b", 3, "shop.b.retry"),
        ("shop.a", 5, "shop.a.retry"),
    ]


def test_consumer_settings_name_what_the_plan_declares(make_kind):
    svc = worker(make_kind, consume("a"), consume("b", exchangeNamespace="demo"))
    topo = messaging.plan(svc)
    for c in json.loads(messaging.consumer_settings(svc)):
        assert c["queue"] in topo.consumed
        assert c["retryExchange"] in exchanges(topo)
        assert c["deadLetterQueue"] in queue_names(topo)
        assert allowed(topo.permissions.read, c["queue"])
        assert allowed(topo.permissions.write, c["retryExchange"])


def test_consumer_settings_of_a_service_without_messaging(make_kind):
    assert messaging.consumer_settings(make_kind("api")) == "[]"


def test_publishes_setting_gives_broker_names_in_spec_order(make_kind):
    svc = worker(make_kind, publishes=({"name": "orders"}, {"name": "audit", "type": "fanout"}))
    setting = messaging.publishes_setting(svc)
    assert setting == "shop.orders,shop.audit"
    assert all(allowed(messaging.plan(svc).permissions.write, n) for n in setting.split(","))


def test_publishes_setting_of_a_service_without_publishes(make_kind):
    assert messaging.publishes_setting(worker(make_kind, consume())) == ""


# --- the AMQP URL ------------------------------------------------------------------------------------------------


def test_amqp_url_encodes_the_root_vhost():
    assert messaging.amqp_url("shop.orders", "pw", "rabbitmq", 5672, "/") == "amqp://shop.orders:pw@rabbitmq:5672/%2F"


def test_amqp_url_keeps_a_named_vhost():
    assert messaging.amqp_url("u", "pw", "mq.local", 5671, "prod") == "amqp://u:pw@mq.local:5671/prod"


def test_amqp_url_escapes_special_characters_in_the_password():
    url = messaging.amqp_url("shop.orders", "p@ss:w/rd?#%", "rabbitmq", 5672, "/")
    assert url == "amqp://shop.orders:p%40ss%3Aw%2Frd%3F%23%25@rabbitmq:5672/%2F"


def test_amqp_url_round_trips_through_a_url_parser():
    from urllib.parse import unquote, urlsplit

    password = "a b@c:d/e%f"
    parts = urlsplit(messaging.amqp_url("shop.orders", password, "rabbitmq", 5672, "/"))
    assert (parts.hostname, parts.port, unquote(parts.password or "")) == ("rabbitmq", 5672, password)
    assert unquote(parts.path[1:]) == "/"
