"""The broker view built from the management API's lists, and the RabbitMQ adapter's pure helpers (no broker)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from platform_operator import messaging, rabbitmq
from platform_operator.messaging import Topology
from platform_operator.rabbitmq import BrokerError, BrokerRefused, BrokerUnavailable, BrokerView, RabbitMQ


def test_bindings_are_kept_per_queue_and_only_from_an_exchange_to_a_queue():
    view = BrokerView.from_lists(
        users=[{"name": "ns.svc", "password_hash": "h", "hashing_algorithm": "rabbit_password_hashing_sha256"}],
        permissions=[{"user": "ns.svc", "vhost": "/", "configure": "^$", "write": r"^ns\.orders$", "read": r"^ns\.q$"}],
        exchanges=[{"name": "ns.orders", "type": "topic"}, {"name": "", "type": "direct"}],
        queues=[{"name": "ns.q", "arguments": {}, "messages": 3, "consumers": 1}],
        bindings=[
            {"source": "", "destination": "ns.q", "destination_type": "queue", "routing_key": "ns.q"},  # default
            {"source": "ns.orders", "destination": "ns.q", "destination_type": "queue", "routing_key": "order.*"},
            {"source": "ns.orders", "destination": "ns.audit", "destination_type": "exchange", "routing_key": "#"},
        ],
        policies=[{"name": "platform/ns/svc/ns.q", "pattern": r"^ns\.q$", "definition": {"max-length": 10}}],
    )
    assert [b["routing_key"] for b in view.bindings["ns.q"]] == ["order.*"]
    assert "ns.audit" not in view.bindings
    assert view.users["ns.svc"]["password_hash"] == "h"
    assert view.permissions["ns.svc"]["write"] == r"^ns\.orders$"
    assert view.queues["ns.q"]["messages"] == 3
    assert set(view.exchanges) == {"ns.orders", ""}
    assert view.policies["platform/ns/svc/ns.q"]["definition"] == {"max-length": 10}


def test_an_empty_vhost_is_an_empty_view():
    view = BrokerView.from_lists([], [], [], [], [], [])
    assert (view.users, view.queues, view.bindings, view.policies) == ({}, {}, {}, {})


# --- the users the operator made ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "ours"),
    [
        ({"name": "shop.orders", "tags": ["platform-service"]}, True),
        ({"name": "shop.orders", "tags": ["management", "platform-service"]}, True),
        ({"name": "shop.orders", "tags": "platform-service"}, True),  # RabbitMQ before 3.9: one string
        ({"name": "shop.orders", "tags": "management,platform-service"}, True),
        ({"name": "admin", "tags": ["administrator"]}, False),
        ({"name": "admin", "tags": "administrator"}, False),
        ({"name": "shop.orders", "tags": ["platform-services"]}, False),
        ({"name": "shop.orders", "tags": "platform-service-x"}, False),
        ({"name": "shop.orders", "tags": []}, False),
        ({"name": "shop.orders", "tags": ""}, False),
        ({"name": "shop.orders"}, False),
    ],
)
def test_is_service_user(user, ours):
    assert rabbitmq.is_service_user(user) is ours


def test_the_policy_prefix_of_a_topology_is_its_services():
    assert rabbitmq.topo_policy_prefix(Topology(user="shop.orders")) == messaging.policy_prefix("shop.orders")
    assert rabbitmq.topo_policy_prefix(Topology(user="shop.orders")) == "platform/shop/orders/"


# --- what the broker answers stays in the operator's log (with a stand-in management API) ------------------

SECRET_BODY = "internal detail: vhost / user admin password hunter2"


def call(handler, action):  # type: ignore[no-untyped-def]
    async def scenario():  # type: ignore[no-untyped-def]
        broker = RabbitMQ("http://rabbitmq:15672", "admin", "pw", "/")
        await broker._http.aclose()
        broker._http = httpx.AsyncClient(base_url=broker.base_url + "/api", transport=httpx.MockTransport(handler))
        try:
            return await action(broker)
        finally:
            await broker.close()

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("status", "action", "kind"),
    [
        (500, lambda b: b.queue_exists("shop.q"), BrokerUnavailable),
        (503, lambda b: b.service_users(), BrokerUnavailable),
        (429, lambda b: b.service_users(), BrokerUnavailable),
        (400, lambda b: b.queue_exists("shop.q"), BrokerRefused),
        (400, lambda b: b.delete_user("shop.orders"), BrokerRefused),
        (405, lambda b: b.delete_user("shop.orders"), BrokerRefused),
    ],
    ids=["get-500", "list-503", "list-429", "get-400", "delete-400", "delete-405"],
)
def test_a_failed_call_is_sorted_and_names_the_status_not_the_brokers_answer(status, action, kind, caplog):
    """5xx and 429 are outages (retried with back-off); the other 4xx are refusals for good."""
    with pytest.raises(BrokerError) as err, caplog.at_level(logging.WARNING, logger="platform_operator"):
        call(lambda request: httpx.Response(status, text=SECRET_BODY), action)
    assert type(err.value) is kind
    message = str(err.value)
    assert f"HTTP {status}" in message
    assert "hunter2" not in message and "internal detail" not in message
    assert "operator's log" in message
    assert "hunter2" in caplog.text  # the operator's log has it, for the platform team


@pytest.mark.parametrize("status", [401, 403])  # RabbitMQ's management API answers 401
def test_a_refusal_of_a_reserved_name_is_for_good_and_names_it(status):
    with pytest.raises(BrokerRefused) as err:
        call(lambda request: httpx.Response(status, text="not_authorised"), lambda b: b.queue_exists("amq.orders"))
    assert "amq.orders" in str(err.value) and "reserves" in str(err.value)


def test_a_403_on_any_other_name_is_the_admin_credentials():
    with pytest.raises(BrokerUnavailable) as err:
        call(lambda request: httpx.Response(403, text="access_refused"), lambda b: b.queue_exists("shop.amq.q"))
    assert "admin credentials" in str(err.value)


def test_an_answer_past_the_deadline_is_unavailable():
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=[])

    async def scenario() -> None:
        broker = RabbitMQ("http://rabbitmq:15672", "admin", "pw", "/", deadline=0.2)
        await broker._http.aclose()
        broker._http = httpx.AsyncClient(base_url=broker.base_url + "/api", transport=httpx.MockTransport(slow))
        try:
            await broker.service_users()
        finally:
            await broker.close()

    with pytest.raises(BrokerUnavailable) as err:
        asyncio.run(scenario())
    assert "did not answer within 0.2s" in str(err.value)


def test_an_unreachable_broker_is_named_by_the_error_type_only(caplog):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connect failed: {SECRET_BODY}", request=request)

    with pytest.raises(BrokerUnavailable) as err, caplog.at_level(logging.WARNING, logger="platform_operator"):
        call(refuse, lambda b: b.queue_exists("shop.q"))
    assert str(err.value) == "RabbitMQ management API at http://rabbitmq:15672 unreachable (ConnectError)"
    assert "hunter2" in caplog.text


def test_service_users_are_the_tagged_ones_sorted():
    users = [
        {"name": "shop.z", "tags": ["platform-service"]},
        {"name": "admin", "tags": ["administrator"]},
        {"name": "shop.a", "tags": "platform-service"},
        {"name": "shop.by-hand", "tags": []},
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("GET", "/api/users")
        return httpx.Response(200, json=users)

    assert call(answer, lambda b: b.service_users()) == ["shop.a", "shop.z"]


@pytest.mark.parametrize(("status", "removed"), [(204, True), (404, False)])
def test_delete_user_says_whether_there_was_one(status, removed):
    seen: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode()))
        return httpx.Response(status)

    assert call(answer, lambda b: b.delete_user("shop.orders")) is removed
    assert seen == [("DELETE", "/api/users/shop.orders")]
