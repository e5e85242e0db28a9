"""The RabbitMQ adapter against a real broker: topology, permissions, the retry and dead-letter paths.

The operator declares exchanges, queues and bindings over AMQP; without an AMQP URL the adapter
declares them through the management API. Tests that take the `broker` fixture run both ways."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from aiormq.exceptions import ChannelAccessRefused
from it_helpers import ENV, gives_up_by_its_deadline, make_broker, make_service, require_env, trickling_proxy

from platform_operator import messaging
from platform_operator.model import PlatformService
from platform_operator.rabbitmq import BrokerRefused, BrokerUnavailable, RabbitMQ


@pytest.fixture(params=["amqp", "management"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[RabbitMQ]:
    """Both ways the adapter declares topology: over AMQP, and through the management API."""
    b = make_broker(over_amqp=request.param == "amqp")
    yield b
    await b.close()


def amqp(user: str, password: str) -> str:
    env = require_env(*ENV)
    return messaging.amqp_url(
        user, password, env["PLATFORM_RABBITMQ_SERVICE_HOST"], int(env["PLATFORM_RABBITMQ_SERVICE_PORT"]), "/"
    )


def on_broker(svc: PlatformService, name: str) -> str:
    """The broker's name of a queue or exchange the spec names: under the service's namespace."""
    return messaging.broker_name(svc.namespace, name)


def queue_and_exchange(svc: PlatformService) -> tuple[str, str]:
    """The broker's names of the queue a worker consumes and the exchange it binds to."""
    consume = svc.spec.messaging.consumes[0]
    return on_broker(svc, consume.queue), on_broker(svc, consume.exchange)


def worker(queue: str, exchange: str, **consume: Any) -> PlatformService:
    return make_service(
        type="worker",
        image="x",
        messaging={"consumes": [{"queue": queue, "exchange": exchange, "routingKeys": ["order.*"], **consume}]},
    )


def unique(prefix: str) -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def get_json(api: httpx.AsyncClient, path: str) -> Any:
    resp = await api.get(path)
    resp.raise_for_status()
    return resp.json()


async def test_provision_declares_the_whole_topology_then_writes_nothing(broker: RabbitMQ, api: httpx.AsyncClient):
    svc = worker(unique("q"), unique("orders"), maxLength=100, messageTTLSeconds=60)
    q, ex = queue_and_exchange(svc)
    topo = messaging.plan(svc)

    first = await broker.provision(topo, "pw")
    assert first.conflicts == []
    assert f"queue {q}" in first.written and f"user {topo.user}" in first.written

    queues = {x["name"]: x for x in await get_json(api, "/queues/%2F")}
    assert {q, f"{q}.dlq", f"{q}.retry.10s"} <= set(queues)
    # What never changes is an argument; what may change (TTL, max length) a policy.
    assert queues[q]["arguments"] == {"x-dead-letter-exchange": f"{q}.dlx"}
    assert queues[f"{q}.retry.10s"]["arguments"] == {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": q,
        "x-message-ttl": 10000,
    }
    assert queues[f"{q}.dlq"]["arguments"] == {}
    bindings = await get_json(api, f"/queues/%2F/{q}/bindings")
    assert {(b["source"], b["routing_key"]) for b in bindings if b["source"]} == {(ex, "order.*")}
    retry_bindings = await get_json(api, f"/queues/%2F/{q}.retry.10s/bindings")
    assert {b["source"] for b in retry_bindings if b["source"]} == {f"{q}.retry"}
    policy = await get_json(api, f"/policies/%2F/{quote(messaging.policy_name(svc, q), safe='')}")
    assert policy["definition"] == {"max-length": 100, "message-ttl": 60000}
    ours = [
        p["name"] for p in await get_json(api, "/policies/%2F") if p["name"].startswith(f"platform/{svc.namespace}/")
    ]
    assert ours == [messaging.policy_name(svc, q)]  # none for the retry queue: its delay is an argument
    perms = await get_json(api, f"/permissions/%2F/{topo.user}")
    assert perms["read"] == topo.permissions.read

    again = await broker.provision(topo, "pw")
    assert again.written == [] and again.conflicts == []


async def test_a_service_user_cannot_read_another_services_queue(broker: RabbitMQ):
    mine, theirs = worker(unique("mine"), unique("ex")), worker(unique("theirs"), unique("ex"))
    await broker.provision(messaging.plan(mine), "pw-mine")
    await broker.provision(messaging.plan(theirs), "pw-theirs")
    their_queue = on_broker(theirs, theirs.spec.messaging.consumes[0].queue)
    my_queue = on_broker(mine, mine.spec.messaging.consumes[0].queue)

    conn = await aio_pika.connect(amqp(messaging.user_name(mine), "pw-mine"))
    try:
        channel = await conn.channel()
        own = await channel.get_queue(my_queue)  # passive declare + read: allowed
        assert await own.get(fail=False) is None
        channel = await conn.channel()
        with pytest.raises(ChannelAccessRefused):
            other = await channel.get_queue(their_queue, ensure=False)
            await other.get(fail=False)
    finally:
        await conn.close()


async def test_retry_path_brings_a_message_back_after_the_delay_then_dead_letters(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    svc = worker(unique("q"), unique("orders"), retryDelaySeconds=1, maxRetries=1)
    q, ex = queue_and_exchange(svc)
    topo = messaging.plan(svc)
    await broker.provision(topo, "pw")

    conn = await aio_pika.connect(amqp(topo.user, "pw"))
    try:
        channel = await conn.channel()
        await publish(api, ex, "order.created", "order 1")  # the publisher is another service
        queue = await channel.get_queue(q)
        first = await _get(queue)
        # The consumer fails once: it sends the message to the retry exchange and acks.
        retry = await channel.get_exchange(messaging.retry_name(q))
        headers = {messaging.RETRY_HEADER: 1}
        await retry.publish(aio_pika.Message(first.body, headers=headers), routing_key="")
        await first.ack()
        assert await queue.get(fail=False) is None  # not back before the delay

        again = await _get(queue, timeout=10)
        assert again.body == b"order 1" and again.headers[messaging.RETRY_HEADER] == 1
        # Retries exhausted: rejected without requeue, it lands in the dead-letter queue.
        assert await rejected_to_the_dead_letters(again, channel, q) == b"order 1"
    finally:
        await conn.close()


async def publish(api: httpx.AsyncClient, exchange: str, key: str, payload: str) -> None:
    body = {"properties": {}, "routing_key": key, "payload": payload, "payload_encoding": "string"}
    resp = await api.post(f"/exchanges/%2F/{exchange}/publish", json=body)
    assert resp.json()["routed"] is True


async def _get(queue: aio_pika.abc.AbstractQueue, timeout: float = 5) -> aio_pika.abc.AbstractIncomingMessage:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        msg = await queue.get(fail=False)
        if msg is not None:
            return msg
        await asyncio.sleep(0.2)
    raise AssertionError(f"no message on {queue.name} within {timeout}s")


async def rejected_to_the_dead_letters(
    msg: aio_pika.abc.AbstractIncomingMessage, channel: aio_pika.abc.AbstractChannel, q: str
) -> bytes:
    """Rejects `msg` (no requeue) and takes what lands in q's dead-letter queue: its body."""
    await msg.reject(requeue=False)
    dead = await _get(await channel.get_queue(messaging.dlq_name(q)), timeout=15)
    await dead.ack()
    return dead.body


async def test_max_length_changes_on_a_live_queue_through_its_policy(broker: RabbitMQ, api: httpx.AsyncClient):
    first = worker(unique("q"), unique("ex"), maxLength=10)
    await broker.provision(messaging.plan(first), "pw")
    c = first.spec.messaging.consumes[0]
    svc = make_service(first.name, first.namespace, type="worker", image="x", messaging={
        "consumes": [{"queue": c.queue, "exchange": c.exchange, "maxLength": 20}]})  # fmt: skip
    q = on_broker(svc, c.queue)
    result = await broker.provision(messaging.plan(svc), "pw")
    assert result.conflicts == []
    assert f"policy {messaging.policy_name(svc, q)}" in result.written
    policy = await get_json(api, f"/policies/%2F/{quote(messaging.policy_name(svc, q), safe='')}")
    assert policy["definition"]["max-length"] == 20


async def test_a_queue_declared_elsewhere_with_arguments_is_a_conflict_not_a_crash(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    svc = worker(unique("q"), unique("ex"))
    q = on_broker(svc, svc.spec.messaging.consumes[0].queue)
    resp = await api.put(f"/queues/%2F/{q}", json={"durable": True, "arguments": {"x-max-length": 5}})
    resp.raise_for_status()
    result = await broker.provision(messaging.plan(svc), "pw")
    assert len(result.conflicts) == 1
    assert f"queue {q} exists with arguments x-max-length=5, not the operator's" in result.conflicts[0]
    assert (await get_json(api, f"/queues/%2F/{q}"))["arguments"] == {"x-max-length": 5}


async def test_a_queue_declared_elsewhere_after_the_listing_is_a_conflict_too(broker: RabbitMQ, api: httpx.AsyncClient):
    await broker.provision(messaging.plan(worker(unique("q"), unique("ex"))), "pw")  # the listing is read
    svc = worker(unique("q"), unique("ex"))
    q = on_broker(svc, svc.spec.messaging.consumes[0].queue)
    resp = await api.put(f"/queues/%2F/{q}", json={"durable": True, "arguments": {"x-max-length": 5}})
    resp.raise_for_status()
    result = await broker.provision(messaging.plan(svc), "pw")  # the listing predates the queue
    assert len(result.conflicts) == 1
    assert f"queue {q} exists with arguments x-max-length=5, not the operator's" in result.conflicts[0]
    assert (await get_json(api, f"/queues/%2F/{q}"))["arguments"] == {"x-max-length": 5}


async def test_deprovision_keeps_queues_with_messages_unless_forced(broker: RabbitMQ, api: httpx.AsyncClient):
    svc = worker(unique("q"), unique("ex"))
    q, ex = queue_and_exchange(svc)
    topo = messaging.plan(svc)
    await broker.provision(topo, "pw")
    await publish(api, ex, "order.created", "keep me")

    result = await broker.deprovision(topo, [ex, f"{q}.dlx", f"{q}.retry"], force=False)
    assert any(k.startswith(f"queue {q} ") for k in result.kept)
    assert (await api.get(f"/queues/%2F/{q}")).status_code == 200
    assert (await api.get(f"/queues/%2F/{q}.dlq")).status_code == 404
    assert (await api.get(f"/users/{topo.user}")).status_code == 404
    assert (await api.get(f"/exchanges/%2F/{ex}")).status_code == 200  # still bound to the kept queue

    forced = await broker.deprovision(topo, [ex], force=True)
    assert f"queue {q}" in forced.deleted
    assert (await api.get(f"/queues/%2F/{q}")).status_code == 404
    assert (await api.get(f"/exchanges/%2F/{ex}")).status_code == 404


async def test_queue_stats_report_messages_and_consumers(broker: RabbitMQ, api: httpx.AsyncClient):
    svc = worker(unique("q"), unique("ex"))
    q, ex = queue_and_exchange(svc)
    await broker.provision(messaging.plan(svc), "pw")
    for _ in range(3):
        await publish(api, ex, "order.x", "m")

    async def three() -> list[dict[str, Any]]:
        for _ in range(40):  # the management API refreshes its counters every few seconds
            stats = await broker.queue_stats([q])
            if stats and stats[0]["messages"] == 3:
                return stats
            await asyncio.sleep(0.5)
        return stats

    assert await three() == [{"name": q, "messages": 3, "consumers": 0}]


def calls(method: str) -> float:
    from platform_operator.observability import REGISTRY

    labels = {"system": "rabbitmq", "operation": method}
    return REGISTRY.get_sample_value("platform_outside_call_duration_seconds_count", labels) or 0.0


async def test_services_in_place_are_checked_from_one_shared_listing(broker: RabbitMQ):
    topos = [messaging.plan(worker(unique("q"), unique("ex"), maxLength=10)) for _ in range(5)]
    for topo in topos:
        assert (await broker.provision(topo, "pw")).written
    broker.forget_view()  # as if the listing had aged: the next check lists the vhost again

    amqp_ops = ("queue.declare", "exchange.declare", "queue.bind")
    gets, writes = calls("GET"), calls("PUT") + calls("POST") + calls("DELETE")
    declarations = sum(calls(op) for op in amqp_ops)
    results = await asyncio.gather(*(broker.provision(t, "pw") for t in topos))
    stats = await asyncio.gather(*(broker.queue_stats(t.queues_in_status) for t in topos))

    assert all(r.written == [] and r.conflicts == [] for r in results)
    assert all(len(s) == 3 for s in stats)
    assert calls("GET") - gets == 6  # users, permissions, exchanges, queues, bindings, policies: once
    assert calls("PUT") + calls("POST") + calls("DELETE") == writes
    assert sum(calls(op) for op in amqp_ops) == declarations


async def test_what_is_deleted_by_hand_is_declared_again_once_the_listing_is_older_than_the_cache(
    api: httpx.AsyncClient,
):
    broker = make_broker(read_cache_seconds=1)
    try:
        svc = worker(unique("q"), unique("ex"))
        q, ex = queue_and_exchange(svc)
        topo = messaging.plan(svc)
        await broker.provision(topo, "pw")
        (await api.delete(f"/queues/%2F/{q}")).raise_for_status()
        await asyncio.sleep(1.1)
        again = await broker.provision(topo, "pw")
        assert f"queue {q}" in again.written
        assert f"binding {ex}->{q} 'order.*'" in again.written
        assert (await api.get(f"/queues/%2F/{q}")).status_code == 200
    finally:
        await broker.close()


async def test_a_service_deleted_and_created_again_at_once_gets_everything_again(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    """The listing the first provision read still shows what deprovision removed: our own
    deletions are applied to it, so nothing is taken for present that is gone."""
    svc = worker(unique("q"), unique("ex"))
    q, ex = queue_and_exchange(svc)
    topo = messaging.plan(svc)
    await broker.provision(topo, "pw")
    await broker.deprovision(topo, [ex, f"{q}.dlx", f"{q}.retry"], force=True)
    assert (await api.get(f"/queues/%2F/{q}")).status_code == 404

    again = await broker.provision(topo, "pw")
    assert {f"user {topo.user}", f"queue {q}", f"exchange {ex}", f"binding {ex}->{q} 'order.*'"} <= set(again.written)
    assert (await api.get(f"/queues/%2F/{q}")).status_code == 200
    assert (await api.get(f"/users/{topo.user}")).status_code == 200
    assert (await get_json(api, f"/queues/%2F/{q}"))["arguments"] == {"x-dead-letter-exchange": f"{q}.dlx"}
    stats = await broker.queue_stats([q])
    assert stats == [{"name": q, "messages": 0, "consumers": 0}]


async def test_unreachable_broker_is_reported_as_unavailable():
    b = RabbitMQ("http://127.0.0.1:1", "u", "p", "/", timeout=1)
    with pytest.raises(BrokerUnavailable, match="unreachable"):
        await b.provision(messaging.plan(worker("q", "ex")), "pw")
    await b.close()


async def test_declarations_go_over_amqp_not_the_management_api(api: httpx.AsyncClient):
    broker = make_broker(over_amqp=True)
    try:
        svc = worker(unique("q"), unique("ex"))
        q = on_broker(svc, svc.spec.messaging.consumes[0].queue)
        puts, posts = calls("PUT"), calls("POST")
        declared = calls("queue.declare")
        result = await broker.provision(messaging.plan(svc), "pw")
        assert f"queue {q}" in result.written
        assert calls("queue.declare") - declared == 3  # the queue, its dead-letter and its retry queue
        assert calls("PUT") - puts == 2  # the user and its permissions: nothing else over HTTP
        assert calls("POST") == posts  # no binding through the management API
    finally:
        await broker.close()


async def test_a_queue_declared_before_arguments_keeps_its_dead_lettering_in_a_policy(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    """Queues of an older operator have no arguments (their dead-lettering was a policy): they are
    kept as they are, and their policy keeps saying what the arguments would."""
    svc = worker(unique("q"), unique("ex"))
    q, ex = queue_and_exchange(svc)
    name = quote(messaging.policy_name(svc, q), safe="")
    (await api.put(f"/queues/%2F/{q}", json={"durable": True, "arguments": {}})).raise_for_status()
    old_policy = {
        "pattern": f"^{q.replace('.', '[.]')}$",
        "definition": {"dead-letter-exchange": f"{q}.dlx"},
        "apply-to": "queues",
        "priority": 100,
    }
    (await api.put(f"/policies/%2F/{name}", json=old_policy)).raise_for_status()

    result = await broker.provision(messaging.plan(svc), "pw")
    assert result.conflicts == []
    assert (await get_json(api, f"/queues/%2F/{q}"))["arguments"] == {}
    policy = await get_json(api, f"/policies/%2F/{name}")
    assert policy["definition"] == {"dead-letter-exchange": f"{q}.dlx"}

    # And it does dead-letter: a rejected message lands in the dead-letter queue.
    topo = messaging.plan(svc)
    await publish(api, ex, "order.created", "legacy")
    conn = await aio_pika.connect(amqp(topo.user, "pw"))
    try:
        channel = await conn.channel()
        msg = await _get(await channel.get_queue(q), timeout=10)
        assert await rejected_to_the_dead_letters(msg, channel, q) == b"legacy"
    finally:
        await conn.close()


async def test_a_new_retry_delay_is_a_new_retry_queue_and_the_old_one_goes_when_empty(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    first = worker(unique("q"), unique("ex"), retryDelaySeconds=30)
    c = first.spec.messaging.consumes[0]
    q = on_broker(first, c.queue)
    await broker.provision(messaging.plan(first), "pw")
    # A message waits in the 30 s retry queue when the delay changes.
    body = {"properties": {}, "routing_key": "", "payload": "waiting", "payload_encoding": "string"}
    (await api.post(f"/exchanges/%2F/{q}.retry/publish", json=body)).raise_for_status()

    svc = make_service(first.name, first.namespace, type="worker", image="x", messaging={
        "consumes": [{"queue": c.queue, "exchange": c.exchange, "retryDelaySeconds": 5}]})  # fmt: skip
    broker.forget_view()
    result = await broker.provision(messaging.plan(svc), "pw")
    assert f"queue {q}.retry.5s" in result.written
    assert (await get_json(api, f"/queues/%2F/{q}.retry.5s"))["arguments"]["x-message-ttl"] == 5000
    sources = {b["source"] for b in await get_json(api, f"/queues/%2F/{q}.retry.30s/bindings") if b["source"]}
    assert sources == set()  # unbound: a failed message goes to one retry queue only
    assert (await api.get(f"/queues/%2F/{q}.retry.30s")).status_code == 200  # kept: it holds a message

    (await api.delete(f"/queues/%2F/{q}.retry.30s/contents")).raise_for_status()
    broker.forget_view()
    again = await broker.provision(messaging.plan(svc), "pw")
    assert f"delete retired queue {q}.retry.30s" in again.written
    assert (await api.get(f"/queues/%2F/{q}.retry.30s")).status_code == 404


async def test_the_marker_tells_a_wiped_vhost(api: httpx.AsyncClient):
    broker = make_broker(over_amqp=True)
    try:
        await broker.place_marker()
        assert await broker.marker_present()
        (await api.delete(f"/exchanges/%2F/{rabbitmq_marker()}")).raise_for_status()
        assert not await broker.marker_present()
        await broker.place_marker()
        assert await broker.marker_present()
    finally:
        await broker.close()


def rabbitmq_marker() -> str:
    from platform_operator.rabbitmq import MARKER_EXCHANGE

    return MARKER_EXCHANGE


# --- the door's answers: done, refused for good, unavailable -----------------------------------------------


async def test_a_name_the_broker_reserves_is_refused_for_good(broker: RabbitMQ, api: httpx.AsyncClient):
    """Namespace amq puts every name under amq., which RabbitMQ keeps for itself (AMQP: 403
    ACCESS_REFUSED; management API: 401)."""
    svc = make_service(
        unique("svc"), "amq", type="worker", image="x", messaging={"consumes": [{"queue": "q", "exchange": "ex"}]}
    )
    topo = messaging.plan(svc)
    try:
        with pytest.raises(BrokerRefused, match=r"reserves names beginning with 'amq\.'") as err:
            await broker.provision(topo, "pw")
        assert "amq." in str(err.value)
        assert (await api.get(f"/queues/%2F/{topo.queues[0].name}")).status_code == 404
    finally:
        await broker.delete_user(topo.user)


async def test_an_argument_the_broker_rejects_is_refused_for_good(broker: RabbitMQ, api: httpx.AsyncClient):
    svc = worker(unique("q"), unique("ex"))
    topo = messaging.plan(svc)
    bad = dataclasses.replace(topo.queues[0], arguments=(*topo.queues[0].arguments, ("x-max-length", -1)))
    topo_bad = dataclasses.replace(topo, queues=(bad, *topo.queues[1:]))
    try:
        with pytest.raises(BrokerRefused, match="rejected") as err:
            await broker.provision(topo_bad, "pw")
        assert bad.name in str(err.value) and "value_negative" not in str(err.value)  # the broker's words: log only
        assert (await api.get(f"/queues/%2F/{bad.name}")).status_code == 404
    finally:
        await broker.deprovision(topo, [e.name for e in topo.exchanges], force=True)


async def test_a_management_api_slower_than_the_deadline_is_unavailable():
    """A proxy that passes the real management API's answer on one byte every 0.3 s: no phase of
    httpx's timeout (5 s) is ever reached, the call's deadline is."""
    env = require_env(*ENV)
    upstream = httpx.URL(env["PLATFORM_RABBITMQ_MANAGEMENT_URL"])
    async with trickling_proxy(upstream.host, upstream.port or 80) as port:
        b = RabbitMQ(
            f"http://127.0.0.1:{port}",
            env["PLATFORM_RABBITMQ_ADMIN_USER"],
            env["PLATFORM_RABBITMQ_ADMIN_PASSWORD"],
            "/",
            timeout=5,
            deadline=2,
        )
        await gives_up_by_its_deadline(b, BrokerUnavailable, "did not answer within 2s")
