"""The RabbitMQ topology a PlatformService turns into: exchanges, queues, bindings, policies, permissions."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from platform_operator import messaging
from platform_operator.messaging import Binding, Exchange, Permissions, Policy, Queue, Topology


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


def test_default_consumer_exchanges(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    assert exchanges(topo) == {"orders": "topic", "q.dlx": "fanout", "q.retry": "fanout"}


def test_default_consumer_queues(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    assert sorted(queue_names(topo)) == ["q", "q.dlq", "q.retry"]
    assert all(isinstance(q, Queue) for q in topo.queues)
    assert topo.queues_in_status == tuple(queue_names(topo))
    assert topo.consumed == ("q",)
    assert topo.empty is False


def test_default_consumer_bindings(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    assert sorted(topo.bindings, key=lambda b: b.exchange) == [
        Binding("orders", "q", "#"),
        Binding("q.dlx", "q.dlq", ""),
        Binding("q.retry", "q.retry", ""),
    ]


def test_one_binding_per_routing_key(make_kind):
    topo = messaging.plan(worker(make_kind, consume(routingKeys=["order.created", "order.*"])))
    main = [b for b in topo.bindings if b.queue == "q"]
    assert main == [Binding("orders", "q", "order.created"), Binding("orders", "q", "order.*")]


def test_default_consumer_policies(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    assert policies(topo) == {
        "q": {"dead-letter-exchange": "q.dlx"},
        "q.retry": {"message-ttl": 10_000, "dead-letter-exchange": "", "dead-letter-routing-key": "q"},
    }


def test_main_policy_carries_ttl_in_ms_and_max_length_when_set(make_kind):
    topo = messaging.plan(worker(make_kind, consume(messageTTLSeconds=60, maxLength=500)))
    assert policies(topo)["q"] == {"dead-letter-exchange": "q.dlx", "message-ttl": 60_000, "max-length": 500}


def test_retry_policy_uses_the_retry_delay(make_kind):
    topo = messaging.plan(worker(make_kind, consume(retryDelaySeconds=45)))
    assert policies(topo)["q.retry"] == {
        "message-ttl": 45_000,
        "dead-letter-exchange": "",
        "dead-letter-routing-key": "q",
    }


def test_policy_patterns_match_exactly_their_queue(make_kind):
    topo = messaging.plan(worker(make_kind, consume()))
    by_queue = {p.queue: p for p in topo.policies}
    assert by_queue["q"].pattern == r"^q$"
    assert by_queue["q.retry"].pattern == r"^q\.retry$"
    assert re.search(by_queue["q"].pattern, "q.retry") is None
    assert re.search(by_queue["q.retry"].pattern, "qXretry") is None


# --- deadLetter / maxRetries switches ----------------------------------------------------------------


def test_dead_letter_false_drops_dlx_dlq_and_the_main_policy(make_kind):
    topo = messaging.plan(worker(make_kind, consume(deadLetter=False)))
    assert exchanges(topo) == {"orders": "topic", "q.retry": "fanout"}
    assert sorted(queue_names(topo)) == ["q", "q.retry"]
    assert sorted(topo.bindings, key=lambda b: b.exchange) == [
        Binding("orders", "q", "#"),
        Binding("q.retry", "q.retry", ""),
    ]
    # Nothing else to say about the main queue: no policy for it at all.
    assert sorted(policies(topo)) == ["q.retry"]


def test_dead_letter_false_keeps_ttl_and_max_length_without_dlx(make_kind):
    topo = messaging.plan(worker(make_kind, consume(deadLetter=False, messageTTLSeconds=5, maxLength=7)))
    assert policies(topo)["q"] == {"message-ttl": 5000, "max-length": 7}


def test_max_retries_zero_removes_the_retry_path(make_kind):
    topo = messaging.plan(worker(make_kind, consume(maxRetries=0)))
    assert exchanges(topo) == {"orders": "topic", "q.dlx": "fanout"}
    assert sorted(queue_names(topo)) == ["q", "q.dlq"]
    assert sorted(topo.bindings, key=lambda b: b.exchange) == [
        Binding("orders", "q", "#"),
        Binding("q.dlx", "q.dlq", ""),
    ]
    assert policies(topo) == {"q": {"dead-letter-exchange": "q.dlx"}}
    assert not allowed(topo.permissions.write, "q.retry")
    assert not allowed(topo.permissions.configure, "q.retry")


def test_no_dead_letter_and_no_retries_is_just_the_queue(make_kind):
    topo = messaging.plan(worker(make_kind, consume(deadLetter=False, maxRetries=0)))
    assert exchanges(topo) == {"orders": "topic"}
    assert queue_names(topo) == ["q"]
    assert topo.bindings == (Binding("orders", "q", "#"),)
    assert topo.policies == ()
    assert topo.permissions == Permissions(configure="^(q)$", write="^$", read="^(q)$")


# --- exchange types -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["topic", "direct", "fanout"])
def test_a_published_exchange_keeps_its_declared_type(make_kind, kind):
    topo = messaging.plan(worker(make_kind, publishes=({"name": "events", "type": kind},)))
    assert exchanges(topo) == {"events": kind}
    assert topo.queues == ()
    assert topo.empty is False


def test_published_exchange_defaults_to_topic(make_kind):
    topo = messaging.plan(worker(make_kind, publishes=({"name": "events"},)))
    assert topo.exchanges == (Exchange("events", "topic"),)


def test_consuming_from_an_exchange_it_publishes_keeps_the_published_type(make_kind):
    svc = worker(make_kind, consume(exchange="orders"), publishes=({"name": "orders", "type": "direct"},))
    assert exchanges(messaging.plan(svc))["orders"] == "direct"


# --- permissions ------------------------------------------------------------------------------------------


def test_default_consumer_permission_regexes(make_kind):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert topo.permissions == Permissions(
        configure=r"^(events|q|q\.dlq|q\.dlx|q\.retry)$",
        write=r"^(events|q\.dlx|q\.retry)$",
        read=r"^(q|q\.dlq)$",
    )


@pytest.mark.parametrize("name", ["q", "q.dlq", "q.dlx", "q.retry", "events"])
def test_configure_covers_the_services_own_names(make_kind, name):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert allowed(topo.permissions.configure, name)


@pytest.mark.parametrize(
    "name",
    ["other.q", "q.dlq.extra", "qX", "q.dlqX", "Xq", "q.retry2", "q-dlq", "events2", "orders", "", "q|other"],
)
@pytest.mark.parametrize("which", ["configure", "write", "read"])
def test_no_permission_reaches_another_services_names(make_kind, which, name):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert not allowed(getattr(topo.permissions, which), name)


@pytest.mark.parametrize(("name", "readable"), [("q", True), ("q.dlq", True), ("q.retry", False), ("q.dlx", False)])
def test_read_covers_the_queue_and_its_dead_letter_queue_only(make_kind, name, readable):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert allowed(topo.permissions.read, name) is readable
    assert not allowed(topo.permissions.read, "events")


@pytest.mark.parametrize(
    ("name", "writable"),
    [("events", True), ("q.retry", True), ("q.dlx", True), ("q", False), ("q.dlq", False), ("orders", False)],
)
def test_write_covers_published_exchanges_retry_and_dlx(make_kind, name, writable):
    topo = messaging.plan(worker(make_kind, consume(), publishes=({"name": "events"},)))
    assert allowed(topo.permissions.write, name) is writable


@pytest.mark.parametrize("kind", ["api", "worker", "bot-polling", "data"])
def test_no_messaging_means_no_permission_and_an_empty_topology(make_kind, kind):
    topo = messaging.plan(make_kind(kind))
    assert topo.permissions == Permissions("^$", "^$", "^$")
    assert topo.empty is True
    assert (topo.exchanges, topo.queues, topo.bindings, topo.policies, topo.consumed) == ((), (), (), (), ())
    assert topo.user == "shop.orders"
    for regex in (topo.permissions.configure, topo.permissions.write, topo.permissions.read):
        assert allowed(regex, "")  # ^$ grants nothing but the empty name
        assert not allowed(regex, "q")
        assert not allowed(regex, "amq.default")


def test_names_with_regex_metacharacters_are_escaped(make_kind):
    svc = worker(make_kind, consume(queue="a.b-c_d", exchange="x"), publishes=({"name": "ev.v1"},))
    topo = messaging.plan(svc)
    read = topo.permissions.read
    assert read == r"^(a\.b\-c_d|a\.b\-c_d\.dlq)$"
    assert allowed(read, "a.b-c_d")
    assert allowed(read, "a.b-c_d.dlq")
    assert not allowed(read, "aXb-c_d")  # the dot is literal, not "any character"
    assert not allowed(read, "a.b-c_dXdlq")
    assert allowed(topo.permissions.write, "ev.v1")
    assert not allowed(topo.permissions.write, "evXv1")


def test_two_consumed_queues_share_no_names_and_are_all_covered(make_kind):
    svc = worker(make_kind, consume("a", "orders"), consume("b", "payments", maxRetries=0))
    topo = messaging.plan(svc)
    assert exchanges(topo) == {
        "orders": "topic",
        "payments": "topic",
        "a.dlx": "fanout",
        "a.retry": "fanout",
        "b.dlx": "fanout",
    }
    assert sorted(queue_names(topo)) == ["a", "a.dlq", "a.retry", "b", "b.dlq"]
    assert topo.consumed == ("a", "b")
    assert topo.permissions.read == r"^(a|a\.dlq|b|b\.dlq)$"
    assert topo.permissions.write == r"^(a\.dlx|a\.retry|b\.dlx)$"


def test_the_broker_user_is_namespace_dot_name(make_kind):
    assert messaging.plan(worker(make_kind, consume())).user == "shop.orders"
    assert messaging.user_name(make_kind("worker")) == "shop.orders"


# --- policy names ---------------------------------------------------------------------------------------


def test_policy_names_are_unique_and_prefixed_by_service(make_kind):
    svc = worker(make_kind, consume("a", messageTTLSeconds=1), consume("b"))
    topo = messaging.plan(svc)
    names = [p.name for p in topo.policies]
    assert names == [
        "platform.shop.orders.a",
        "platform.shop.orders.a.retry",
        "platform.shop.orders.b",
        "platform.shop.orders.b.retry",
    ]
    assert len(set(names)) == len(names)
    assert all(isinstance(p, Policy) for p in topo.policies)


def test_policy_names_differ_between_services_with_the_same_queue(make_svc):
    spec = {"type": "worker", "messaging": {"consumes": [consume()]}}
    one = messaging.plan(make_svc(name="orders", namespace="shop", **spec))
    other = messaging.plan(make_svc(name="orders", namespace="billing", **spec))
    assert {p.name for p in one.policies}.isdisjoint({p.name for p in other.policies})
    assert all(p.name.startswith("platform.billing.orders.") for p in other.policies)


def test_policy_name_format(make_kind):
    assert messaging.policy_name(make_kind("worker"), "q.retry") == "platform.shop.orders.q.retry"


# --- what the consumer is told (RABBITMQ_CONSUMES) -----------------------------------------------------------


def test_consumer_settings_defaults(make_kind):
    out = messaging.consumer_settings(worker(make_kind, consume()))
    assert json.loads(out) == [
        {
            "queue": "q",
            "prefetch": 10,
            "maxRetries": 3,
            "retryExchange": "q.retry",
            "deadLetterQueue": "q.dlq",
            "retryHeader": "x-retry-count",
        }
    ]
    assert " " not in out  # compact: it goes into an env var


def test_consumer_settings_without_retry_or_dead_letter(make_kind):
    svc = worker(make_kind, consume(prefetch=50, maxRetries=0, deadLetter=False))
    assert json.loads(messaging.consumer_settings(svc)) == [
        {
            "queue": "q",
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
        ("b", 3, "b.retry"),
        ("a", 5, "a.retry"),
    ]


def test_consumer_settings_of_a_service_without_messaging(make_kind):
    assert messaging.consumer_settings(make_kind("api")) == "[]"


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
